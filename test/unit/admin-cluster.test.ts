// The admin API and commands in cluster mode: two daemons (node1, node2) on one real etcd and one
// shared data root. Each node's ls, inspect and leases show every node's leases, each with its node;
// a node's own leases carry whether they are stale and whether a container here has the volume
// mounted, another node's do not (only that node can tell). With etcd gone, a node still answers with
// its own leases and says the others are unknown.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { adminCommands } from '../../src/commands';
import { EtcdCluster } from '../reliability/lib/etcd-cluster';
import { adminOf, type Admin } from './admin-support';
import { destroy, sandbox, unmountAndRemove, type Sandbox } from './support';

jest.setTimeout(60_000);

let etcd: EtcdCluster;
let shared: string;
const nodes: Sandbox[] = [];
const admins: Admin[] = [];

beforeAll(async () => {
  shared = fs.mkdtempSync('/tmp/hv-cluster-');
  etcd = await EtcdCluster.start(path.join(shared, 'etcd'), 1);
  for (const node of ['node1', 'node2']) {
    const sb = await sandbox({
      dataRoot: path.join(shared, 'data'),
      cluster: { urls: etcd.urls, node, prefix: '/admin', leaseTtl: 5, opTimeoutMs: 2000 },
    });
    nodes.push(sb);
    admins.push(adminOf(sb));
    (await sb.daemon.ready).deps.inUse = async () => true; // this node's containers: one has it mounted
  }
});
afterAll(async () => {
  for (const a of admins) await a.close();
  for (const sb of nodes) await destroy(sb);
  await etcd?.stop();
  await unmountAndRemove(shared);
});

/** Runs `hostvol <args>` against node i's admin socket in this process; what it printed. */
async function hostvol(i: number, ...args: string[]): Promise<string> {
  const cmd = adminCommands().find((c: Command) => c.name() === args[0])!;
  let out = '';
  const w = jest.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  try {
    await cmd.exitOverride().parseAsync([...args.slice(1), '--admin-socket', nodes[i].config.adminSocket!], { from: 'user' });
  } finally {
    w.mockRestore();
    process.exitCode = undefined;
  }
  return out;
}
async function known(i: number, name: string): Promise<void> {
  const until = Date.now() + 5000;
  while ((await nodes[i].raw('/VolumeDriver.Get', JSON.stringify({ Name: name }))).text.includes('Err":"volume')) {
    if (Date.now() > until) throw new Error(`node${i + 1} never learnt of volume ${name}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('every node lists every lease of a volume with its node; its own with stale and mount visibility', async () => {
  await nodes[0].call('/VolumeDriver.Create', { Name: 'cv' });
  await known(1, 'cv');
  await nodes[0].call('/VolumeDriver.Mount', { Name: 'cv', ID: 'm1' });
  await nodes[1].call('/VolumeDriver.Mount', { Name: 'cv', ID: 'm2' });
  await nodes[1].call('/VolumeDriver.Mount', { Name: 'cv', ID: 'm2' });
  const lease = (node: string, id: string, count: number, stale: boolean | null) => ({ volume: 'cv', node, id, count, generation: 0, stale });

  const ls = (await admins[1].call('GET', '/volumes')).body.find((v: { name: string }) => v.name === 'cv');
  expect(ls).toMatchObject({ leases: 2, nodes: ['node1', 'node2'] });
  const d = (await admins[1].call('GET', '/volumes/cv')).body;
  expect(d).toMatchObject({ node: 'node2', mountVisible: true, leases: [lease('node1', 'm1', 1, null), lease('node2', 'm2', 2, false)] });
  expect(d.othersUnknown).toBeUndefined();
  const seenFrom1 = (await admins[0].call('GET', '/leases/cv')).body;
  expect(seenFrom1).toEqual([{ volume: 'cv', node: 'node1', generation: 0, mountVisible: true, leases: [lease('node1', 'm1', 1, false), lease('node2', 'm2', 2, null)] }]);
  expect((await admins[0].call('GET', '/leases')).body.map((v: { volume: string }) => v.volume)).toEqual(['cv']);

  // The commands show the same, a NODE column in each; another node's stale and mounted are '-'.
  expect(await hostvol(1, 'ls')).toMatch(/^cv\s+ready\s+2\s+node1,node2\s+\//m);
  const leases = await hostvol(1, 'leases', 'cv');
  expect(leases).toMatch(/^cv\s+node1\s+m1\s+1\s+0\s+-\s+-$/m);
  expect(leases).toMatch(/^cv\s+node2\s+m2\s+2\s+0\s+no\s+yes$/m);
  const inspected = await hostvol(1, 'inspect', 'cv');
  expect(inspected).toMatch(/^Mounted in a container on this node \(node2\): yes$/m);
  expect(inspected).toMatch(/^ {2}node node1 {2}m1 {2}count 1 {2}generation 0\n {2}node node2 {2}m2 {2}count 2 {2}generation 0$/m);
  expect(JSON.parse(await hostvol(1, 'leases', 'cv', '--format', 'json'))).toEqual((await admins[1].call('GET', '/leases/cv')).body);

  // An Unmount on node1 is seen on node2 at once: etcd is asked, not a copy.
  await nodes[0].call('/VolumeDriver.Unmount', { Name: 'cv', ID: 'm1' });
  expect((await admins[1].call('GET', '/volumes/cv')).body.leases.map((l: { node: string }) => l.node)).toEqual(['node2']);
});

test("releasing another node's lease is refused, naming the node that holds it and where to run the release", async () => {
  await nodes[0].call('/VolumeDriver.Create', { Name: 'rel' });
  await known(1, 'rel');
  await nodes[1].call('/VolumeDriver.Mount', { Name: 'rel', ID: 'r2' });
  const { status, body } = await admins[0].call('POST', '/leases/rel/release', { id: 'r2', force: true });
  expect(status).toBe(409);
  expect(body.Err).toBe(
    'volume "rel": lease "r2" is held by node node2, not by this node (node1); a lease is released on the node that holds it ' +
      '(only there can hostvol see whether a container still uses it): run hostvol release rel --id r2 on node2. ' +
      'A node that is gone loses its leases by itself once its etcd lease expires (--lease-ttl)',
  );
  // Nothing was released; on node2 the same release works; an ID no node holds is still "holds no lease".
  expect((await admins[0].call('GET', '/leases/rel')).body[0].leases.map((l: { node: string; id: string }) => `${l.node}/${l.id}`)).toEqual(['node2/r2']);
  expect((await admins[1].call('POST', '/leases/rel/release', { id: 'r2', force: true })).body).toMatchObject({ released: ['r2'] });
  expect((await admins[0].call('POST', '/leases/rel/release', { id: 'r2' })).body.Err).toBe('volume "rel" holds no lease "r2"; see hostvol leases rel');
});

test('etcd unreachable: a node still shows its own leases and says why the others are missing', async () => {
  await nodes[0].call('/VolumeDriver.Create', { Name: 'cut' });
  await known(1, 'cut');
  await nodes[0].call('/VolumeDriver.Mount', { Name: 'cut', ID: 'a1' });
  await nodes[1].call('/VolumeDriver.Mount', { Name: 'cut', ID: 'b1' });
  await etcd.kill(0);
  try {
    const { status, body } = await admins[1].call('GET', '/volumes/cut');
    expect(status).toBe(200);
    expect(body.leases.map((l: { node: string; id: string }) => `${l.node}/${l.id}`)).toEqual(['node2/b1']);
    expect(body.othersUnknown).toMatch(/^the leases of other nodes could not be read: cannot read the mount leases of volume "cut": etcd .* is unreachable/);
    expect((await admins[1].call('GET', '/volumes')).body.find((v: { name: string }) => v.name === 'cut')).toMatchObject({ leases: 1, nodes: ['node2'] });
    expect(await hostvol(1, 'leases', 'cut')).toMatch(/^\(the leases of other nodes could not be read: /m);
    // A release of an ID not held here cannot say which node holds it, and says why.
    expect((await admins[1].call('POST', '/leases/cut/release', { id: 'a1' })).body.Err).toMatch(
      /^volume "cut" holds no lease "a1" on this node \(node2\); the other nodes' leases could not be read: cannot read the mount leases of volume "cut": etcd .* is unreachable.*; see hostvol leases cut$/,
    );
  } finally {
    await etcd.restart(0);
  }
});
