// Start-up recovery and the store: a restart keeps volumes and leases; a new boot id drops leases
// and their bind mounts; creates and removes cut short by a crash are undone or finished.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mountPoints } from '../../src/host/mountinfo';
import { SqliteStore } from '../../src/store/sqlite';
import { destroy, sandbox, type Sandbox } from './support';

let sb: Sandbox;
beforeEach(async () => {
  sb = await sandbox();
});
afterEach(() => destroy(sb));

const status = async (Name: string) => (await sb.call('/VolumeDriver.Get', { Name })).Volume.Status;
const bindOf = (name: string) => path.join(sb.config.stateDir, 'mounts', name);

test('a restart keeps volumes, options and leases; the ro bind mount stays in place', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'keep', Opts: { ro: '', mode: '0700' } });
  await sb.call('/VolumeDriver.Mount', { Name: 'keep', ID: 'a' });
  await sb.call('/VolumeDriver.Mount', { Name: 'keep', ID: 'a' });
  await sb.restart();
  expect(await status('keep')).toMatchObject({ mounts: 1, readOnly: true, options: { mode: '0700' } });
  expect(mountPoints()).toContain(bindOf('keep'));
  await sb.call('/VolumeDriver.Unmount', { Name: 'keep', ID: 'a' });
  expect((await status('keep')).mounts).toBe(1);
  expect(mountPoints()).toContain(bindOf('keep'));
  await sb.call('/VolumeDriver.Unmount', { Name: 'keep', ID: 'a' });
  expect(mountPoints()).not.toContain(bindOf('keep'));
  expect(await sb.call('/VolumeDriver.Remove', { Name: 'keep' })).toEqual({});
});

test('a new kernel boot id drops every lease and removes the stale bind mounts', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'rb', Opts: { ro: '' } });
  await sb.call('/VolumeDriver.Create', { Name: 'rw' });
  await sb.call('/VolumeDriver.Mount', { Name: 'rb', ID: 'x' });
  await sb.call('/VolumeDriver.Mount', { Name: 'rw', ID: 'y' });
  await sb.stop();
  fs.writeFileSync(sb.config.bootIdFile, 'boot-2\n');
  await sb.restart();
  expect((await status('rb')).mounts).toBe(0);
  expect((await status('rw')).mounts).toBe(0);
  expect(mountPoints()).not.toContain(bindOf('rb'));
  expect(fs.existsSync(bindOf('rb'))).toBe(false);
  expect(await sb.call('/VolumeDriver.Remove', { Name: 'rb' })).toEqual({});
});

test('a bind mount lost while its lease is active is re-created at start', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'lost', Opts: { ro: '' } });
  await sb.call('/VolumeDriver.Mount', { Name: 'lost', ID: 'l' });
  await sb.stop();
  require('node:child_process').execFileSync('umount', [bindOf('lost')]);
  await sb.restart();
  expect(mountPoints()).toContain(bindOf('lost'));
  expect(() => fs.writeFileSync(path.join(bindOf('lost'), 'f'), '')).toThrow(/EROFS/);
});

const cutShort = async (name: string, dir: string, made: string) => {
  const store = new SqliteStore(sb.config.stateDir);
  await store.load();
  await store.insertVolume({
    name, path: dir, options: '{"readOnly":false,"mode":448}', createdBy: 'hostvol',
    createdAt: new Date().toISOString(), state: 'creating', made,
  });
  await store.close();
};

test('a create cut short before its directory was made is undone: no record, no directory', async () => {
  await sb.stop();
  fs.mkdirSync(path.join(sb.config.dataRoot, 'half')); // mkdir -p got this far
  await cutShort('half', path.join(sb.config.dataRoot, 'half', 'made'), path.join(sb.config.dataRoot, 'half'));
  await sb.restart();
  expect((await sb.call('/VolumeDriver.Get', { Name: 'half' })).Err).toMatch(/does not exist/);
  expect(fs.existsSync(path.join(sb.config.dataRoot, 'half'))).toBe(false);
});

test('a create cut short after its directory was made is undone too: it was never acknowledged', async () => {
  await sb.stop();
  const dir = path.join(sb.config.dataRoot, 'whole');
  fs.mkdirSync(dir);
  await cutShort('whole', dir, dir);
  await sb.restart();
  expect((await sb.call('/VolumeDriver.Get', { Name: 'whole' })).Err).toMatch(/does not exist/);
  expect(fs.existsSync(dir)).toBe(false);
  // And the name is free for the Create dockerd sends again.
  expect(await sb.call('/VolumeDriver.Create', { Name: 'whole', Opts: { mode: '0700' } })).toEqual({});
  expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
});

test('a remove cut short by a crash is finished', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'going' });
  await sb.stop();
  const store = new SqliteStore(sb.config.stateDir);
  await store.load();
  await store.setState('going', 'removing');
  await store.close();
  await sb.restart();
  expect((await sb.call('/VolumeDriver.Get', { Name: 'going' })).Err).toMatch(/does not exist/);
  expect(fs.existsSync(path.join(sb.config.dataRoot, 'going'))).toBe(false);
});

test('requests that arrive while the store loads wait for it instead of missing volumes', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'early' });
  await sb.stop();
  const restarting = sb.restart();
  // Send as soon as the socket exists, before start-up has necessarily finished.
  while (!fs.existsSync(sb.config.socket)) await new Promise((r) => setTimeout(r, 1));
  const [reply] = await Promise.all([sb.call('/VolumeDriver.Get', { Name: 'early' }), restarting]);
  expect(reply.Volume.Name).toBe('early');
});

describe('a dockerd that crashed and came back (a new /Plugin.Activate)', () => {
  test('re-mounting an ID it never unmounted adopts it at count 1, so one Unmount frees the volume', async () => {
    await sb.call('/Plugin.Activate');
    await sb.call('/VolumeDriver.Create', { Name: 'crash', Opts: { Z: '' } });
    await sb.call('/VolumeDriver.Mount', { Name: 'crash', ID: 'restart-always' });
    await sb.call('/VolumeDriver.Mount', { Name: 'crash', ID: 'restart-always' }); // docker cp makes it 2
    // dockerd is killed: no Unmount. The new dockerd activates and re-mounts the restart-policy container's ID.
    await sb.call('/Plugin.Activate');
    expect(await sb.call('/VolumeDriver.Mount', { Name: 'crash', ID: 'restart-always' })).toHaveProperty('Mountpoint');
    expect((await status('crash')).mounts).toBe(1);
    expect((await sb.call('/VolumeDriver.Mount', { Name: 'crash', ID: 'other' })).Err).toMatch(/single-writer/);
    await sb.call('/VolumeDriver.Unmount', { Name: 'crash', ID: 'restart-always' });
    expect((await status('crash')).mounts).toBe(0);
    expect(await sb.call('/VolumeDriver.Remove', { Name: 'crash' })).toEqual({});
  });

  test('within one dockerd, and across hostvol restarts, a repeated ID still counts twice (docker cp)', async () => {
    await sb.call('/Plugin.Activate');
    await sb.call('/VolumeDriver.Create', { Name: 'cp' });
    await sb.call('/VolumeDriver.Mount', { Name: 'cp', ID: 'c' });
    await sb.restart(); // hostvol restarts; dockerd does not, and does not activate again
    await sb.call('/VolumeDriver.Mount', { Name: 'cp', ID: 'c' });
    await sb.call('/VolumeDriver.Unmount', { Name: 'cp', ID: 'c' });
    expect((await status('cp')).mounts).toBe(1);
    await sb.call('/VolumeDriver.Unmount', { Name: 'cp', ID: 'c' });
    expect((await status('cp')).mounts).toBe(0);
  });
});
