// Store.leases: every mount lease of a volume (or of all) with the node holding it, as the store holds
// it now, for the admin commands. The same contract against both stores: the SQLite store (one node,
// named by --node-name or the hostname) and the etcd store on a real etcd, where two EtcdStore
// instances with different node names are two nodes and each sees the other's leases.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { EtcdStore } from '../../src/store/etcd';
import { SqliteStore } from '../../src/store/sqlite';
import type { LeaseRecord, Store, VolumeRecord } from '../../src/store/store';
import { useEtcd } from './etcd-fixture';

jest.setTimeout(60_000);

const fx = useEtcd('hostvol-leases-');

async function loaded<S extends Store>(s: S): Promise<S> {
  fx.opened.push(s);
  await s.load();
  return s;
}
const sqlite = (node?: string) => loaded(new SqliteStore(fs.mkdtempSync(path.join(fx.dir, 'state-')), node));
/** `names.length` nodes of one cluster (a fresh prefix, one shared data root). */
async function etcdNodes(...names: string[]): Promise<EtcdStore[]> {
  const prefix = fx.prefix('l');
  const dataRoot = fs.mkdtempSync(path.join(fx.dir, 'data-'));
  const out = [];
  for (const node of names) out.push(await loaded(new EtcdStore({ urls: fx.etcd.urls, node, prefix, leaseTtl: 5, dataRoot, stateDir: fs.mkdtempSync(path.join(fx.dir, 'state-')), opTimeoutMs: 3000 }, pino({ level: 'silent' }))));
  return out;
}
const rec = (name: string): VolumeRecord => ({
  name, path: `/srv/${name}`, options: '{}', createdBy: 'hostvol', createdAt: '2026-12-01T00:00:00.000Z', state: 'ready', made: null,
});
const lease = (volume: string, id: string, count = 1, generation = 1): LeaseRecord => ({ volume, id, count, bootId: 'boot-1', generation });

describe.each([
  ['SQLite', async () => [await sqlite('host-a')]],
  ['etcd', () => etcdNodes('host-a')],
])('%s store: this node\'s leases, under its name', (_kind, make) => {
  test('listed per volume and for every volume, sorted, with counts; an Unmount to zero and a forgotten volume take them away', async () => {
    const [s] = await make();
    expect(s.node).toBe('host-a');
    for (const v of ['vb', 'va', 'vc']) await s.insertVolume(rec(v));
    await s.setLease(lease('vb', 'm2'));
    await s.setLease(lease('vb', 'm1', 2, 4));
    await s.setLease(lease('va', 'm3'));
    await s.setLease(lease('vc', 'm4'));
    expect(await s.leases('vb')).toEqual([
      { volume: 'vb', node: 'host-a', id: 'm1', count: 2, bootId: 'boot-1', generation: 4 },
      { volume: 'vb', node: 'host-a', id: 'm2', count: 1, bootId: 'boot-1', generation: 1 },
    ]);
    await s.setLease(lease('vb', 'm1', 0));
    await s.deleteVolume('vc');
    expect((await s.leases()).map((l) => `${l.volume}/${l.node}/${l.id}`)).toEqual(['va/host-a/m3', 'vb/host-a/m2']);
    expect(await s.leases('vc')).toEqual([]);
    expect(await s.leases('unknown')).toEqual([]);
  });
});

test('the SQLite store is named after the host unless given a node name', async () => {
  expect((await sqlite()).node).toBe(os.hostname());
});

test("etcd: each node sees every node's leases, each under its holder's name; a prefix of a name is another volume", async () => {
  const [a, b] = await etcdNodes('node/1', 'node2'); // a '/' in a node name stays in the name
  await a.insertVolume(rec('v'));
  await a.insertVolume(rec('v2'));
  await a.setLease(lease('v', 'x/1'));
  await b.setLease(lease('v', 'y', 3));
  await b.setLease(lease('v2', 'z'));
  for (const s of [a, b]) {
    expect(await s.leases('v')).toEqual([
      { volume: 'v', node: 'node/1', id: 'x/1', count: 1, bootId: 'boot-1', generation: 1 },
      { volume: 'v', node: 'node2', id: 'y', count: 3, bootId: 'boot-1', generation: 1 },
    ]);
  }
  expect((await a.leases()).map((l) => `${l.volume} ${l.node} ${l.id}`)).toEqual(['v node/1 x/1', 'v node2 y', 'v2 node2 z']);
  // An Unmount on one node is seen by the other at once.
  await b.setLease(lease('v', 'y', 0));
  expect((await a.leases('v')).map((l) => l.node)).toEqual(['node/1']);
});

test('etcd unreachable: the read is refused with a clear error, not left hanging', async () => {
  const [a] = await etcdNodes('node1');
  await fx.etcd.kill(0);
  try {
    const t0 = Date.now();
    await expect(a.leases('v')).rejects.toThrow(/^cannot read the mount leases of volume "v": etcd \(.*\) is unreachable or has no quorum/);
    expect(Date.now() - t0).toBeLessThan(8000);
  } finally {
    await fx.etcd.restart(0);
  }
});
