// GET /leases and POST /leases/:name/release (hostvol leases, hostvol release): a release goes
// through the volume's lock, is durable before it is answered, and is refused while a container may
// still have the volume mounted unless forced.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isMountPoint, useAdminSandbox, type Admin } from './admin-support';
import type { Sandbox } from './support';

let sb: Sandbox;
let admin: Admin;
const admins = useAdminSandbox((s, a) => ((sb = s), (admin = a)));

/** Fixes what the host reports about containers' mounts (true, false, or undefined: cannot tell). */
async function hostSees(v: boolean | undefined): Promise<void> {
  (await sb.daemon.ready).deps.inUse = async () => v;
}
const release = (name: string, body: unknown) => admin.call('POST', `/leases/${name}/release`, body);
const bindOf = (name: string) => path.join(fs.realpathSync(sb.config.stateDir), 'mounts', name);

test('leases lists each volume with leases, its current generation and whether a mount is visible', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'le-a' });
  await sb.call('/VolumeDriver.Mount', { Name: 'le-a', ID: 'id1' });
  await sb.call('/VolumeDriver.Mount', { Name: 'le-a', ID: 'id1' });
  await hostSees(true);
  const one = (await admin.call('GET', '/leases/le-a')).body;
  // Without --node-name the embedded store's node is the host's name.
  const node = os.hostname();
  expect(one).toEqual([{ volume: 'le-a', node, generation: 0, mountVisible: true, leases: [{ volume: 'le-a', node, id: 'id1', count: 2, generation: 0, stale: false }] }]);
  const all = (await admin.call('GET', '/leases')).body.map((v: { volume: string }) => v.volume);
  expect(all).toContain('le-a');
});

test('a lease whose mount is visible is refused, and kept, unless --force', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'le-b' });
  await sb.call('/VolumeDriver.Mount', { Name: 'le-b', ID: 'held' });
  await hostSees(true);
  const refused = await release('le-b', { id: 'held' });
  expect(refused.status).toBe(409);
  expect(refused.body.Err).toBe('volume "le-b": lease(s) held not released: a container still has the volume mounted; stop the container first, or pass --force if you know none uses it');
  expect((await admin.call('GET', '/leases/le-b')).body[0].leases).toHaveLength(1);
  const forced = await release('le-b', { id: 'held', force: true });
  expect(forced).toEqual({ status: 200, body: { volume: 'le-b', released: ['held'], mountVisible: true } });
});

test('a release is durable: after a restart the lease is gone and the bind mount with it', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'le-c' });
  await sb.call('/VolumeDriver.Mount', { Name: 'le-c', ID: 'gone' });
  expect(await isMountPoint(bindOf('le-c'))).toBe(true);
  await hostSees(false);
  expect((await release('le-c', { id: 'gone' })).body).toEqual({ volume: 'le-c', released: ['gone'], mountVisible: false });
  expect(await isMountPoint(bindOf('le-c'))).toBe(false);
  await sb.restart();
  await admins.reconnect();
  expect((await admin.call('GET', '/leases/le-c')).body[0].leases).toEqual([]);
});

test('--stale releases only leases from an earlier dockerd; a current one stays', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'le-d' });
  await sb.call('/VolumeDriver.Mount', { Name: 'le-d', ID: 'old' });
  await sb.call('/Plugin.Activate'); // a new dockerd: 'old' is from the one before
  await sb.call('/VolumeDriver.Mount', { Name: 'le-d', ID: 'new' });
  await hostSees(false);
  const before = (await admin.call('GET', '/leases/le-d')).body[0];
  expect(before.leases.map((l: { id: string; stale: boolean }) => [l.id, l.stale])).toEqual([['new', false], ['old', true]]); // sorted by node, then Mount ID
  expect((await release('le-d', { stale: true })).body.released).toEqual(['old']);
  expect((await admin.call('GET', '/leases/le-d')).body[0].leases.map((l: { id: string }) => l.id)).toEqual(['new']);
});

test('when hostvol cannot see containers it refuses without --force, saying why', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'le-e' });
  await sb.call('/VolumeDriver.Mount', { Name: 'le-e', ID: 'm' });
  await hostSees(undefined);
  const r = await release('le-e', { id: 'm' });
  expect(r.status).toBe(409);
  expect(r.body.Err).toMatch(/cannot tell whether one still uses it; stop the container first, or pass --force/);
});

test('a release names a lease the volume does not hold, and wants exactly one of id and stale', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'le-f' });
  expect(await release('le-f', { id: 'nope' })).toEqual({ status: 400, body: { Err: 'volume "le-f" holds no lease "nope"; see hostvol leases le-f' } });
  expect((await release('le-f', {})).body.Err).toMatch(/give either a lease id \(--id ID\) or --stale/);
  expect((await release('le-f', { id: 'a', stale: true })).status).toBe(400);
  expect((await release('le-f', { id: 7 })).body.Err).toBe('release: "id" must be a string');
  expect((await release('no-such-vol', { id: 'a' })).status).toBe(404);
});
