// POST /doctor ({fix}) (hostvol doctor): what disagrees between the records, the data
// root and the host's mounts; a fix changes only what cannot lose data or break a container.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { useAdminSandbox, type Admin } from './admin-support';
import type { Sandbox } from './support';

let sb: Sandbox;
let admin: Admin;
useAdminSandbox((s, a) => ((sb = s), (admin = a)), { each: true });

const root = () => fs.realpathSync(sb.config.dataRoot);
const kinds = (r: { findings: Array<{ kind: string; subject: string; fixed?: string }> }) => r.findings.map((f) => [f.kind, f.subject, !!f.fixed]);

const look = async () => (await admin.call('POST', '/doctor', {})).body;
const fix = async (extra = {}) => (await admin.call('POST', '/doctor', { fix: true, ...extra })).body;

test('a clean data root reports nothing', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'dr-ok' });
  expect(await look()).toEqual({ findings: [] });
});

test('volumes dockerd does not list under hostvol\'s driver are named, with how to settle it (dockerd\'s list comes from the client)', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'dr-known' });
  await sb.call('/VolumeDriver.Create', { Name: 'dr-unlisted', Opts: { mode: '0700', uid: '5', o: 'ro,z', onremove: 'keep' } });
  await sb.call('/VolumeDriver.Create', { Name: 'dr-shadowed' });
  const dockerVolumes = [{ name: 'dr-known', driver: 'hostvol' }, { name: 'dr-shadowed', driver: 'local' }, { name: 'other', driver: 'local' }];
  const r = (await admin.call('POST', '/doctor', { dockerVolumes, driver: 'hostvol', fix: true })).body;
  expect(r.findings).toEqual([
    { kind: 'unknown-to-dockerd', subject: 'dr-shadowed', detail: 'dockerd shows a volume of driver local under this name instead, so docker commands never reach hostvol\'s; rename or remove one of them' },
    {
      kind: 'unknown-to-dockerd', subject: 'dr-unlisted',
      detail: 'dockerd does not list it, so docker volume ls and prune miss it; check that dockerd can reach hostvol, then docker volume create -d hostvol -o uid=5 -o mode=0700 -o ro=true -o z=true -o onremove=keep dr-unlisted',
    },
  ]);
  // The command it gives is the same volume to hostvol (a repeat Create), not a conflict.
  expect(await sb.call('/VolumeDriver.Create', { Name: 'dr-unlisted', Opts: { uid: '5', mode: '0700', ro: 'true', z: 'true', onremove: 'keep' } })).toEqual({});
  expect((await admin.call('POST', '/doctor', { dockerVolumes: ['x'] })).status).toBe(400);
});

test('directories with no volume are found; fix removes empty ones and trash, keeps ones with data', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'dr-a' });
  await sb.call('/VolumeDriver.Create', { Name: 'dr-deep', Opts: { path: path.join(root(), 'nest', 'dr-deep') } });
  fs.mkdirSync(path.join(root(), 'empty-orphan'));
  fs.mkdirSync(path.join(root(), 'full-orphan'));
  fs.writeFileSync(path.join(root(), 'full-orphan', 'data'), 'precious');
  const trash = path.join(root(), '.hostvol-trash-0123456789abcdef01234567');
  fs.mkdirSync(path.join(trash, 'x'), { recursive: true });
  const found = await look();
  expect(kinds(found).sort()).toEqual([
    ['orphan-directory', trash, false],
    ['orphan-directory', path.join(root(), 'empty-orphan'), false],
    ['orphan-directory', path.join(root(), 'full-orphan'), false],
  ].sort());
  expect(fs.existsSync(path.join(root(), 'empty-orphan'))).toBe(true); // looking changes nothing

  const fixed = await fix();
  const status = Object.fromEntries(fixed.findings.map((f: { subject: string; fixed?: string }) => [path.basename(f.subject), f.fixed]));
  expect(status['empty-orphan']).toBe('removed: it was empty');
  expect(status[path.basename(trash)]).toBe('deleted: the remains of a volume delete that was cut short');
  expect(status['full-orphan']).toBeUndefined();
  expect(fs.existsSync(path.join(root(), 'empty-orphan'))).toBe(false);
  expect(fs.existsSync(trash)).toBe(false);
  expect(fs.readFileSync(path.join(root(), 'full-orphan', 'data'), 'utf8')).toBe('precious');
  expect(fs.existsSync(path.join(root(), 'nest', 'dr-deep'))).toBe(true); // above a volume: not an orphan
});

test('a volume whose directory is gone is listed and left for the operator', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'dr-gone' });
  fs.rmSync(path.join(root(), 'dr-gone'), { recursive: true });
  const r = await fix();
  expect(r.findings).toEqual([
    { kind: 'missing-directory', subject: 'dr-gone', detail: `its directory ${path.join(root(), 'dr-gone')} is gone; put the data back there, or remove the volume (docker volume rm dr-gone)` },
  ]);
});

test('leases with no visible mount: fix drops the stale ones, leaves current ones with the command', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'dr-l' });
  await sb.call('/VolumeDriver.Mount', { Name: 'dr-l', ID: 'old' });
  await sb.call('/Plugin.Activate');
  await sb.call('/VolumeDriver.Mount', { Name: 'dr-l', ID: 'new' });
  const driver = await sb.daemon.ready;
  driver.deps.inUse = async () => false;
  const r = await fix();
  expect(kinds(r)).toEqual([['lease-without-mount', 'dr-l', true], ['lease-without-mount', 'dr-l', false]]);
  expect(r.findings[1].detail).toBe('lease new has no visible mount; hostvol release dr-l --id new drops it');
  expect([...driver.volumes.get('dr-l')!.leases.keys()]).toEqual(['new']);
});

test('leases are not judged when hostvol cannot see containers', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'dr-u' });
  await sb.call('/VolumeDriver.Mount', { Name: 'dr-u', ID: 'm' });
  (await sb.daemon.ready).deps.inUse = async () => undefined;
  expect(kinds(await fix())).toEqual([['cannot-tell', 'dr-u', false]]);
});

test('leases of a volume dockerd says a running container uses are not judged by the mount tables', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'dr-busy' });
  await sb.call('/VolumeDriver.Mount', { Name: 'dr-busy', ID: 'old' });
  await sb.call('/Plugin.Activate');
  const driver = await sb.daemon.ready;
  driver.deps.inUse = async () => false; // what a managed plugin's view may wrongly say
  expect((await fix({ dockerInUse: ['dr-busy'] })).findings).toEqual([]);
  expect([...driver.volumes.get('dr-busy')!.leases.keys()]).toEqual(['old']);
  expect((await admin.call('POST', '/doctor', { dockerInUse: 'dr-busy' })).status).toBe(400);
});
