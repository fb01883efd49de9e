// The driver of one node in a cluster (two daemons, node1 and node2, on one real etcd and one shared
// data root), where what a node knows from its own table is not the whole cluster: Get's Status
// counts this node's mounts and names the node; a directory another node is placing (or placed, and
// this node has not heard yet) is refused by etcd, not only by the table; and Mount, Unmount and
// Remove of a volume this node's watch has not brought yet read it from etcd first (follow.ts catchUp).
// A node's watch is held back deterministically by bracketing the name as the store does for its own
// writes (etcd-watch.ts: reports of a name wait while one is open).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RecordFeed } from '../../src/store/etcd-watch';
import type { Driver } from '../../src/volumes/driver';
import { EtcdCluster } from '../reliability/lib/etcd-cluster';
import { destroy, sandbox, unmountAndRemove, type Sandbox } from './support';

jest.setTimeout(60_000);

let etcd: EtcdCluster;
let shared: string;
const nodes: Sandbox[] = [];

beforeAll(async () => {
  shared = fs.mkdtempSync('/tmp/hv-cdriver-');
  etcd = await EtcdCluster.start(path.join(shared, 'etcd'), 1);
  fs.mkdirSync(path.join(shared, 'paths'));
  for (const node of ['node1', 'node2']) {
    nodes.push(
      await sandbox({
        dataRoot: path.join(shared, 'data'),
        allowPaths: [path.join(shared, 'paths')],
        cluster: { urls: etcd.urls, node, prefix: '/driver', leaseTtl: 5, opTimeoutMs: 2000 },
      }),
    );
  }
});
afterAll(async () => {
  for (const sb of nodes) await destroy(sb);
  await etcd?.stop();
  await unmountAndRemove(shared);
});

const call = async (i: number, route: string, body: unknown) => JSON.parse((await nodes[i].raw(route, JSON.stringify(body))).text);
const errOf = (reply: { Err?: string }) => reply.Err ?? '';
async function known(i: number, name: string): Promise<void> {
  const until = Date.now() + 5000;
  while (errOf(await call(i, '/VolumeDriver.Get', { Name: name })) !== '') {
    if (Date.now() > until) throw new Error(`node${i + 1} never learnt of volume ${name}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
/** Holds node i's watch reports of `name` until the returned function is called. */
async function holdWatch(i: number, name: string): Promise<() => void> {
  const driver: Driver = await nodes[i].daemon.ready;
  const feed = (driver.deps.store as unknown as { feed: RecordFeed }).feed;
  feed.begin(name);
  return () => feed.end(name);
}

test("Get's Status counts this node's mounts and names the node", async () => {
  expect(errOf(await call(0, '/VolumeDriver.Create', { Name: 'counted' }))).toBe('');
  await known(1, 'counted');
  await call(0, '/VolumeDriver.Mount', { Name: 'counted', ID: 'a' });
  await call(0, '/VolumeDriver.Mount', { Name: 'counted', ID: 'b' });
  await call(1, '/VolumeDriver.Mount', { Name: 'counted', ID: 'c' });
  expect((await call(0, '/VolumeDriver.Get', { Name: 'counted' })).Volume.Status).toMatchObject({ mounts: 2, node: 'node1' });
  expect((await call(1, '/VolumeDriver.Get', { Name: 'counted' })).Volume.Status).toMatchObject({ mounts: 1, node: 'node2' });
});

test("-o path= nesting with a directory only another node knows of is refused, by etcd's claims", async () => {
  const release = await holdWatch(1, 'placed');
  try {
    const dir = path.join(shared, 'paths', 'placed');
    expect(errOf(await call(0, '/VolumeDriver.Create', { Name: 'placed', Opts: { path: dir } }))).toBe('');
    // node2 has not heard of "placed": its own table has nothing to object to.
    expect(errOf(await call(1, '/VolumeDriver.Get', { Name: 'placed' }))).toBe('volume "placed" does not exist in hostvol');
    const inner = path.join(dir, 'inner');
    expect(errOf(await call(1, '/VolumeDriver.Create', { Name: 'nested', Opts: { path: inner } }))).toBe(
      `volume "nested": ${inner} is or nests with the directory of volume "placed" (${dir}, made by node node1); choose another path`,
    );
    expect(errOf(await call(1, '/VolumeDriver.Get', { Name: 'nested' }))).toBe('volume "nested" does not exist in hostvol');
  } finally {
    release();
  }
  // Nothing is claimed by a refused create: beside it, a directory is fine.
  expect(errOf(await call(1, '/VolumeDriver.Create', { Name: 'beside', Opts: { path: path.join(shared, 'paths', 'beside') } }))).toBe('');
});

test('Mount, Unmount and Remove of a volume the watch has not brought yet read it from etcd first', async () => {
  const release = [await holdWatch(1, 'late'), await holdWatch(1, 'late-rm')];
  try {
    expect(errOf(await call(0, '/VolumeDriver.Create', { Name: 'late', Opts: { mode: '0750' } }))).toBe('');
    expect(errOf(await call(0, '/VolumeDriver.Create', { Name: 'late-rm' }))).toBe('');
    // Get and List answer from this node's table: still without them.
    expect(errOf(await call(1, '/VolumeDriver.Get', { Name: 'late' }))).toBe('volume "late" does not exist in hostvol');
    const mounted = await call(1, '/VolumeDriver.Mount', { Name: 'late', ID: 'm' });
    expect(errOf(mounted)).toBe('');
    expect(mounted.Mountpoint).toBe(path.join(fs.realpathSync(nodes[1].config.stateDir), 'mounts', 'late'));
    // Read once, it is in the table with the options node1 gave it.
    expect((await call(1, '/VolumeDriver.Get', { Name: 'late' })).Volume.Status).toMatchObject({ options: { mode: '0750' }, mounts: 1 });
    expect(errOf(await call(1, '/VolumeDriver.Unmount', { Name: 'late', ID: 'm' }))).toBe('');
    expect(errOf(await call(1, '/VolumeDriver.Remove', { Name: 'late-rm' }))).toBe('');
    expect(fs.existsSync(path.join(shared, 'data', 'late-rm'))).toBe(false);
  } finally {
    release.forEach((r) => r());
  }
  // The held reports then arrive and change nothing: "late" is as read, "late-rm" stays gone.
  await new Promise((r) => setTimeout(r, 300));
  expect((await call(1, '/VolumeDriver.Get', { Name: 'late' })).Volume.Status).toMatchObject({ options: { mode: '0750' }, mounts: 0 });
  expect(errOf(await call(1, '/VolumeDriver.Get', { Name: 'late-rm' }))).toBe('volume "late-rm" does not exist in hostvol');
});

// In a cluster the store rules on a Mount before anything is bound: another node may have removed the
// volume since this node's table last heard. Bound first, the directory would be mounted (and a
// container could be handed it) for a volume etcd no longer has, if only until the undo.
test('a Mount etcd refuses (the volume was removed on another node) binds nothing, not even for a moment', async () => {
  expect(errOf(await call(0, '/VolumeDriver.Create', { Name: 'gone-elsewhere' }))).toBe('');
  await known(1, 'gone-elsewhere');
  const release = await holdWatch(1, 'gone-elsewhere');
  const driver: Driver = await nodes[1].daemon.ready;
  const binds = [jest.spyOn(driver.deps.mounter, 'bind'), jest.spyOn(driver.deps.mounter, 'bindBeneath')];
  try {
    expect(errOf(await call(0, '/VolumeDriver.Remove', { Name: 'gone-elsewhere' }))).toBe('');
    // node2's table still has it, ready: only etcd knows better.
    expect(errOf(await call(1, '/VolumeDriver.Get', { Name: 'gone-elsewhere' }))).toBe('');
    expect(errOf(await call(1, '/VolumeDriver.Mount', { Name: 'gone-elsewhere', ID: 'late' }))).not.toBe('');
    for (const b of binds) expect(b).not.toHaveBeenCalled();
  } finally {
    binds.forEach((b) => b.mockRestore());
    release();
  }
});
