// Issue 13: cluster mode. Three `hostvol serve --etcd` nodes share one data root and a real 3-member
// etcd cluster (test/reliability/lib/cluster.ts); every request goes over a node's plugin socket as
// dockerd sends it. Each test uses its own volume names, in the order written: the later ones kill
// nodes and etcd members.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HostvolCluster, errOf, waitFor } from './lib/cluster';
import { requireBuild } from './lib/serve';

jest.setTimeout(120_000);

const TTL = 2;
const TIMEOUT_MS = 3000;
let c: HostvolCluster;

beforeAll(async () => {
  requireBuild();
  c = await HostvolCluster.start('cluster', { nodes: 3, ttl: TTL, timeoutMs: TIMEOUT_MS });
});
afterAll(async () => {
  await c?.stop();
});

const create = (i: number, name: string, opts: Record<string, string> = {}) => c.call(i, '/VolumeDriver.Create', { Name: name, Opts: opts }).then(errOf);
const mount = (i: number, name: string, id: string) => c.call(i, '/VolumeDriver.Mount', { Name: name, ID: id });
const unmount = (i: number, name: string, id: string) => c.call(i, '/VolumeDriver.Unmount', { Name: name, ID: id }).then(errOf);
const remove = (i: number, name: string) => c.call(i, '/VolumeDriver.Remove', { Name: name }).then(errOf);
const get = (i: number, name: string) => c.call(i, '/VolumeDriver.Get', { Name: name });
const listed = async (i: number) => ((await c.call(i, '/VolumeDriver.List', {})).json.Volumes as { Name: string }[]).map((v) => v.Name);
const known = (i: number, name: string) => waitFor(`node${i + 1} to know volume ${name}`, async () => errOf(await get(i, name)) === '', 5000);

test('every node answers Capabilities with scope global', async () => {
  for (let i = 0; i < 3; i++) expect((await c.call(i, '/VolumeDriver.Capabilities', {})).json).toEqual({ Capabilities: { Scope: 'global' } });
});

test('a volume created on node 1 is listed and inspectable on node 2 and 3, with the same options and path', async () => {
  expect(await create(0, 'shared', { uid: '1000', mode: '0750' })).toBe('');
  await known(1, 'shared');
  await known(2, 'shared');
  const [a, b] = [(await get(0, 'shared')).json.Volume, (await get(1, 'shared')).json.Volume];
  expect(b.Status.options).toEqual(a.Status.options);
  expect(b.Mountpoint).toBe(a.Mountpoint);
  expect(b.CreatedAt).toBe(a.CreatedAt);
  expect(await listed(2)).toContain('shared');
  expect(fs.statSync(path.join(c.dataRoot, 'shared')).mode & 0o7777).toBe(0o750);
  // Swarm sends Create on every node that runs a task: with the same options that is no error.
  expect(await create(1, 'shared', { uid: '1000', mode: '0750' })).toBe('');
  expect(await create(2, 'shared', { mode: '0700' })).toMatch(/^volume "shared" already exists with options/);
});

test('concurrent Creates of one name from every node: same options make one volume; different options, exactly one wins', async () => {
  for (let round = 0; round < 5; round++) {
    const same = `same-${round}`;
    expect(await Promise.all([0, 1, 2].map((i) => create(i, same, { mode: '0711' })))).toEqual(['', '', '']);
    const diff = `diff-${round}`;
    const errs = await Promise.all([0, 1, 2].map((i) => create(i, diff, { mode: `07${i}0` })));
    expect(errs.filter((e) => e === '')).toHaveLength(1);
    for (const e of errs.filter((e) => e !== '')) expect(e).toMatch(new RegExp(`^volume "${diff}" already exists with options`));
    const winner = errs.indexOf('');
    for (let i = 0; i < 3; i++) {
      await known(i, diff);
      expect((await get(i, diff)).json.Volume.Status.options.mode).toBe(`07${winner}0`);
    }
  }
});

test('Remove on node 2 is refused while node 1 has the volume mounted, and accepted after its Unmount', async () => {
  expect(await create(0, 'busy')).toBe('');
  await known(1, 'busy');
  expect(errOf(await mount(0, 'busy', 'm1'))).toBe('');
  expect(await remove(1, 'busy')).toBe('volume "busy" is in use on node node1 (1 mount(s)) and cannot be removed; stop the containers using it there first');
  expect(errOf(await get(1, 'busy'))).toBe('');
  expect(fs.existsSync(path.join(c.dataRoot, 'busy'))).toBe(true);
  expect(await unmount(0, 'busy', 'm1')).toBe('');
  expect(await remove(1, 'busy')).toBe('');
  expect(fs.existsSync(path.join(c.dataRoot, 'busy'))).toBe(false);
  await waitFor('node1 to forget busy', async () => !(await listed(0)).includes('busy'), 5000);
  expect(errOf(await mount(0, 'busy', 'm2'))).toMatch(/no such volume|not found|busy/);
});

test('Z: mounted on node 1, refused on node 2 (the same Mount ID counts once), taken after the Unmount', async () => {
  expect(await create(0, 'single', { Z: '' })).toBe('');
  await known(1, 'single');
  expect(errOf(await mount(0, 'single', 'z1'))).toBe('');
  expect(errOf(await mount(0, 'single', 'z1'))).toBe(''); // docker cp: the same ID again
  expect(errOf(await mount(1, 'single', 'z2'))).toMatch(/^volume "single" is single-writer \(option Z\) and is already mounted by another container \(on node node1\)/);
  expect(await unmount(0, 'single', 'z1')).toBe('');
  expect(errOf(await mount(1, 'single', 'z2'))).toMatch(/single-writer/); // still counted once
  expect(await unmount(0, 'single', 'z1')).toBe('');
  expect(errOf(await mount(1, 'single', 'z2'))).toBe('');
  expect(await unmount(1, 'single', 'z2')).toBe('');
});

test('node 1 SIGKILLed with a Z volume mounted: node 2 is refused until its lease expires, then mounts', async () => {
  expect(await create(0, 'orphan', { Z: '' })).toBe('');
  await known(1, 'orphan');
  expect(errOf(await mount(0, 'orphan', 'o1'))).toBe('');
  await c.kill(0);
  const killedAt = Date.now();
  expect(errOf(await mount(1, 'orphan', 'o2'))).toMatch(/single-writer.*on node node1/);
  await waitFor('node 2 to mount after the TTL', async () => errOf(await mount(1, 'orphan', 'o2')) === '', 4 * TTL * 1000);
  // Not before the lease could have expired: the TTL, less a little for etcd's clock granularity.
  expect(Date.now() - killedAt).toBeGreaterThan(TTL * 1000 - 500);
  expect(await unmount(1, 'orphan', 'o2')).toBe('');
  await c.restart(0);
});

test('one etcd member killed: no request fails; it rejoins', async () => {
  await c.etcd.kill(0);
  try {
    for (let round = 0; round < 10; round++) {
      const name = `member-${round}`;
      const i = round % 3;
      expect(await create(i, name, { mode: '0755' })).toBe('');
      expect(await create((i + 1) % 3, name, { mode: '0755' })).toBe('');
      expect(errOf(await mount((i + 1) % 3, name, 'x'))).toBe('');
      expect(await unmount((i + 1) % 3, name, 'x')).toBe('');
      expect(await remove((i + 2) % 3, name)).toBe('');
    }
  } finally {
    await c.etcd.restart(0);
  }
});

test('quorum lost: clean Errs within the bound, Get/List answer (stale), Unmounts queue; quorum back: works again without a restart', async () => {
  expect(await create(0, 'cut', { mode: '0755' })).toBe('');
  await known(1, 'cut');
  expect(errOf(await mount(0, 'cut', 'c1'))).toBe('');
  await c.etcd.kill(1);
  await c.etcd.kill(2);
  try {
    const bound = TIMEOUT_MS + 5000; // well inside dockerd's 60 s and 120 s
    for (const [what, run] of [
      ['create', () => create(1, 'cut-new')],
      ['mount', async () => errOf(await mount(1, 'cut', 'c2'))],
      ['remove', () => remove(2, 'cut')],
    ] as const) {
      const t0 = Date.now();
      const err = await run();
      expect({ what, ms: Date.now() - t0 < bound }).toEqual({ what, ms: true });
      expect(err).toMatch(/etcd \(.*\) is unreachable or has no quorum/);
      expect(err).toMatch(/try again then$/);
    }
    const got = (await get(1, 'cut')).json.Volume;
    expect(got.Name).toBe('cut');
    expect(got.Status.stale).toMatch(/^since /);
    expect(await listed(2)).toContain('cut');
    // The Unmount answers at once; it is applied once etcd is back. So does an Activate (a dockerd
    // started meanwhile must be able to use the plugin once etcd is back).
    let t0 = Date.now();
    expect(await unmount(0, 'cut', 'c1')).toBe('');
    expect({ what: 'unmount', ms: Date.now() - t0 < bound }).toEqual({ what: 'unmount', ms: true });
    t0 = Date.now();
    expect((await c.call(2, '/Plugin.Activate', {})).json).toEqual({ Implements: ['VolumeDriver'] });
    expect({ what: 'activate', ms: Date.now() - t0 < bound }).toEqual({ what: 'activate', ms: true });
  } finally {
    await c.etcd.restart(1);
    await c.etcd.restart(2);
  }
  // No restart of any hostvol: the queued Unmount lands, so Remove on another node is accepted.
  await waitFor('node 2 to mount again', async () => errOf(await mount(1, 'cut', 'c2')) === '', 20_000);
  expect(await unmount(1, 'cut', 'c2')).toBe('');
  await waitFor('the queued unmount to land', async () => (await remove(2, 'cut')) === '', 20_000);
  expect(await create(1, 'cut-new')).toBe('');
  expect((await get(1, 'cut-new')).json.Volume.Status.stale).toBeUndefined();
  // The watch is back too: a volume made on one node is known on the others within seconds.
  await known(0, 'cut-new');
  await known(2, 'cut-new');
});

test('a node frozen past its lease TTL takes its leases again when it wakes, or logs the conflict when another node took a Z volume', async () => {
  for (const name of ['kept', 'taken']) {
    expect(await create(0, name, { Z: '' })).toBe('');
    await known(1, name);
    expect(errOf(await mount(0, name, `${name}-1`))).toBe('');
  }
  // SIGSTOP: the process stays, its keepalives stop; etcd drops its lease (and mount leases) after the TTL.
  process.kill(c.node(0).pid, 'SIGSTOP');
  try {
    await waitFor('node 2 to take "taken"', async () => errOf(await mount(1, 'taken', 'taken-2')) === '', 4 * TTL * 1000);
  } finally {
    process.kill(c.node(0).pid, 'SIGCONT');
  }
  await waitFor('node 1 to log the conflict', () => /CONFLICT: .*another node took this volume/.test(c.node(0).logTail(200)), 15_000);
  expect(c.node(0).logTail(200)).toMatch(/"volume":"taken".*CONFLICT/);
  // "kept" was mounted by nobody else: node 1 holds it again, so node 2 is refused.
  await waitFor('node 1 to take "kept" again', () => /"volume":"kept".*took a mount lease again/.test(c.node(0).logTail(200)), 15_000);
  expect(errOf(await mount(1, 'kept', 'kept-2'))).toMatch(/single-writer.*on node node1/);
  expect(await unmount(0, 'kept', 'kept-1')).toBe('');
  expect(errOf(await mount(1, 'kept', 'kept-2'))).toBe('');
  expect(await unmount(1, 'kept', 'kept-2')).toBe('');
  expect(await unmount(1, 'taken', 'taken-2')).toBe('');
  expect(await unmount(0, 'taken', 'taken-1')).toBe('');
});
