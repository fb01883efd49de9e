// The etcd store against a real etcd (one member, started here): the Store contract as two nodes see
// it. Two EtcdStore instances with different node names on one etcd are two nodes of a cluster.
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { EtcdStore } from '../../src/store/etcd';
import type { RemoteChange, VolumeRecord } from '../../src/store/store';
import { useEtcd } from './etcd-fixture';

jest.setTimeout(60_000);

const fx = useEtcd('hostvol-etcd-');

/** Two nodes on a fresh prefix, loaded. */
async function nodes(n = 2, ttl = 2): Promise<EtcdStore[]> {
  const prefix = fx.prefix('t');
  const dataRoot = path.join(fx.dir, `data${prefix.slice(2)}`);
  fs.mkdirSync(dataRoot);
  const out = [];
  for (let i = 0; i < n; i++) out.push(await node(`node${i + 1}`, prefix, dataRoot, ttl));
  return out;
}
/** Each node (each hostvol) has its own state directory; `{ ...s.config }` is that hostvol restarted. */
async function node(name: string, prefix: string, dataRoot: string, ttl = 2): Promise<EtcdStore> {
  const stateDir = fs.mkdtempSync(path.join(fx.dir, `state-${name}-`));
  const s = new EtcdStore({ urls: fx.etcd.urls, node: name, prefix, leaseTtl: ttl, dataRoot, stateDir, opTimeoutMs: 3000 }, pino({ level: 'silent' }));
  fx.opened.push(s);
  await s.load();
  return s;
}
const rec = (name: string, more: Partial<VolumeRecord> = {}): VolumeRecord => ({
  name, path: `/srv/${name}`, options: '{"mode":448}', createdBy: 'hostvol', createdAt: '2026-12-01T00:00:00.000Z', state: 'ready', made: null, ...more,
});
const lease = (volume: string, id: string, count = 1) => ({ volume, id, count, bootId: 'boot-1', generation: 1 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a record another node made is handed back; one still being created is waited for', async () => {
  const [a, b] = await nodes();
  expect(a.scope).toBe('global');
  expect(await a.insertVolume(rec('v'))).toBeUndefined();
  expect(await b.insertVolume(rec('v', { path: '/elsewhere' }))).toEqual(rec('v'));
  await a.insertVolume(rec('w', { state: 'creating' }));
  const waiting = b.insertVolume(rec('w'));
  await sleep(300);
  await a.setState('w', 'ready');
  expect(await waiting).toEqual(rec('w'));
  await a.setState('w', 'removing');
  await expect(b.insertVolume(rec('w'))).rejects.toThrow('volume "w" is being removed by node node1; create it again once that is done');
});

test('Z across nodes: one transaction decides; the same Mount ID counts up; tokens grow', async () => {
  const [a, b] = await nodes();
  await a.insertVolume(rec('z'));
  const t1 = await a.setLease(lease('z', 'm1'), { exclusive: true });
  const t2 = await a.setLease(lease('z', 'm1', 2));
  expect(t2).toBeGreaterThan(t1);
  await expect(b.setLease(lease('z', 'm2'), { exclusive: true })).rejects.toThrow(
    'volume "z" is single-writer (option Z) and is already mounted by another container (on node node1)',
  );
  // Both nodes at once on a free volume: exactly one wins.
  await a.insertVolume(rec('race'));
  const results = await Promise.allSettled([a.setLease(lease('race', 'x'), { exclusive: true }), b.setLease(lease('race', 'y'), { exclusive: true })]);
  expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  await a.setLease(lease('z', 'm1', 1));
  await expect(b.setLease(lease('z', 'm2'), { exclusive: true })).rejects.toThrow('single-writer');
  await a.setLease(lease('z', 'm1', 0));
  expect(await b.setLease(lease('z', 'm2'), { exclusive: true })).toBeGreaterThan(t2);
});

test('removing and forgetting a volume are refused while another node holds a lease, and mounting a removing one', async () => {
  const [a, b] = await nodes();
  await a.insertVolume(rec('r'));
  await a.setLease(lease('r', 'm1'));
  await expect(b.setState('r', 'removing')).rejects.toThrow('volume "r" is in use on node node1 (1 mount(s)) and cannot be removed');
  await expect(b.deleteVolume('r')).rejects.toThrow('in use on node node1');
  await a.setLease(lease('r', 'm1', 0));
  await b.setState('r', 'removing');
  await expect(a.setLease(lease('r', 'm2'))).rejects.toThrow('volume "r" is being removed (node node2); it cannot be mounted');
  await b.deleteVolume('r');
  await expect(a.setLease(lease('r', 'm2'))).rejects.toThrow('volume "r" has no record in etcd: another node removed it');
  // A node whose table still knows the removed volume cannot remove the next one while it is being made.
  await a.insertVolume(rec('r', { state: 'creating' }));
  await expect(b.setState('r', 'removing')).rejects.toThrow('volume "r" is being created by node node1; remove it once it is ready');
});

test("watch reports other nodes' changes in order, never this node's own, and a late one is no longer current", async () => {
  const [a, b] = await nodes();
  const seen: RemoteChange[] = [];
  b.watch((c) => seen.push(c));
  await a.insertVolume(rec('w1', { state: 'creating' }));
  await a.setState('w1', 'ready');
  await b.insertVolume(rec('mine'));
  await a.setState('w1', 'removing');
  await a.deleteVolume('w1');
  await sleep(300);
  expect(seen.map((c) => [c.name, c.record?.state ?? null])).toEqual([['w1', 'creating'], ['w1', 'ready'], ['w1', 'removing'], ['w1', null]]);
  expect(seen.map((c) => c.current())).toEqual([false, false, false, true]);
  await a.insertVolume(rec('w1'));
  await sleep(300);
  const late = seen[seen.length - 1];
  expect(late.current()).toBe(true);
  await b.setState('w1', 'removing'); // this node wrote the name since: the report is stale now
  expect(late.current()).toBe(false);
});

test("a node restarted within the TTL takes its leases over; one away longer loses them; other boots' leases are dropped", async () => {
  const [a] = await nodes(1);
  await a.insertVolume(rec('k'));
  await a.setLease(lease('k', 'm1'));
  await a.setLease({ ...lease('k', 'old'), bootId: 'boot-0' });
  await a.close();
  const again = new EtcdStore({ ...a.config }, pino({ level: 'silent' }));
  fx.opened.push(again);
  expect((await again.load()).leases.map((l) => l.id).sort()).toEqual(['m1', 'old']);
  expect(await again.dropLeasesFromOtherBoots('boot-1')).toBe(1);
  // Taken over means on this process's etcd lease: still there after the first process's TTL.
  await sleep(2500);
  await expect(node('node2', a.config.prefix, a.config.dataRoot).then((b) => b.setLease(lease('k', 'm2'), { exclusive: true }))).rejects.toThrow('on node node1');
  await again.close();
  await sleep(3500); // past the 2 s TTL: nobody keeps node1's lease alive
  const late = new EtcdStore({ ...a.config }, pino({ level: 'silent' }));
  fx.opened.push(late);
  const snap = await late.load();
  expect(snap.leases).toEqual([]);
  expect([...snap.volumes].map((v) => v.name)).toEqual(['k']);
});

test("start-up is handed a live node's remove in progress only once that node is gone", async () => {
  const [a] = await nodes(1);
  await a.insertVolume(rec('gone'));
  await a.setState('gone', 'removing');
  const b = await node('node2', a.config.prefix, a.config.dataRoot);
  const names = async (s: EtcdStore) => {
    const fresh = new EtcdStore({ ...s.config }, pino({ level: 'silent' }));
    fx.opened.push(fresh);
    return [...(await fresh.load()).volumes].map((v) => `${v.name}:${v.state}`);
  };
  expect(await names(b)).toEqual([]);
  await a.close();
  await sleep(2500); // node1's lease (TTL 2 s) and its liveness key expire
  expect(await names(b)).toEqual(['gone:removing']);
});

test('a data root other nodes do not share is refused at load, naming the node and the fix', async () => {
  const [a] = await nodes(1);
  const other = fs.mkdtempSync(path.join(fx.dir, 'other-'));
  const b = new EtcdStore({ ...a.config, node: 'node2', dataRoot: other }, pino({ level: 'silent' }));
  fx.opened.push(b);
  await expect(b.load()).rejects.toThrow(
    `data root ${other} is not the file system node "node1" sees: its marker ${other}/.hostvol-cluster/node1 is missing; mount the shared file system at ${a.config.dataRoot} on every node`,
  );
});

test('an Unmount while etcd is down answers at once and is applied when etcd is back (long before the lease TTL)', async () => {
  const [a, b] = await nodes(2, 60);
  await a.insertVolume(rec('q'));
  await a.setLease(lease('q', 'm1'), { exclusive: true });
  await fx.etcd.kill(0);
  try {
    const t0 = Date.now();
    await a.setLease(lease('q', 'm1', 0));
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(a.health()).toMatchObject({ available: false, reason: expect.any(String), since: expect.any(String) });
    await expect(b.setLease(lease('q', 'm2'), { exclusive: true })).rejects.toThrow(/etcd .* is unreachable or has no quorum/);
  } finally {
    await fx.etcd.restart(0);
  }
  // Within seconds, not the 60 s TTL: the queued release was applied, not expired.
  const t1 = Date.now();
  for (;;) {
    try {
      await b.setLease(lease('q', 'm2'), { exclusive: true });
      break;
    } catch (err) {
      if (Date.now() - t1 > 15_000) throw err;
      await sleep(200);
    }
  }
  expect(a.health()).toEqual({ available: true });
});

test("directories are claimed across nodes: in, around or at another volume's directory is refused, even while it is being created", async () => {
  const [a, b] = await nodes();
  const at = (name: string, dir: string, more: Partial<VolumeRecord> = {}) => rec(name, { path: dir, ...more });
  await a.insertVolume(at('outer', '/srv/x', { state: 'creating' })); // not in node2's table: only etcd knows
  const nests = 'is or nests with the directory of volume "outer" (/srv/x, made by node node1); choose another path';
  await expect(b.insertVolume(at('inner', '/srv/x/y'))).rejects.toThrow(`volume "inner": /srv/x/y ${nests}`);
  await expect(b.insertVolume(at('around', '/srv'))).rejects.toThrow(`volume "around": /srv ${nests}`);
  await expect(b.insertVolume(at('same', '/srv/x'))).rejects.toThrow(`volume "same": /srv/x ${nests}`);
  expect(await b.insertVolume(at('beside', '/srv/xy'))).toBeUndefined(); // a longer name is no child
  // Two nodes placing nested directories at once: one transaction wins, the other is refused.
  const both = await Promise.allSettled([a.insertVolume(at('p', '/q/1')), b.insertVolume(at('q', '/q/1/2'))]);
  expect(both.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  // Forgotten with its volume: the directory is free again.
  await a.deleteVolume('outer');
  expect(await b.insertVolume(at('inner', '/srv/x/y'))).toBeUndefined();
  // A node that dies while creating leaves a claim whose record expired with its etcd lease: stale, cleared.
  const c = await node('node3', a.config.prefix, a.config.dataRoot);
  await c.insertVolume(at('dies', '/d', { state: 'creating' }));
  await c.close();
  await sleep(3500); // past the 2 s TTL
  expect(await b.insertVolume(at('next', '/d/e'))).toBeUndefined();
});
