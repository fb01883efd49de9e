// The admin app: a root-only socket, JSON errors worded as the plugin's Errs with a status from their
// type, and one place where routers are mounted.
import * as fs from 'node:fs';
import { useAdminSandbox, type Admin } from './admin-support';
import { destroy, sandbox, type Sandbox } from './support';

let sb: Sandbox;
let admin: Admin;
useAdminSandbox((s, a) => ((sb = s), (admin = a)));

test('the admin socket is a socket with mode 0600 (root only)', () => {
  const st = fs.lstatSync(sb.config.adminSocket!);
  expect(st.isSocket()).toBe(true);
  expect(st.mode & 0o777).toBe(0o600);
});

describe('errors are {"Err": …} with the plugin\'s wording and a status from their type', () => {
  test('an unknown volume is 404 with the same Err the plugin\'s Get gives', async () => {
    const plugin = await sb.call('/VolumeDriver.Get', { Name: 'no-such' });
    const res = await admin.call('GET', '/volumes/no-such');
    expect(res).toEqual({ status: 404, body: { Err: plugin.Err } });
  });

  test('an invalid name is 400 with the plugin\'s wording', async () => {
    const plugin = await sb.call('/VolumeDriver.Get', { Name: '..x' });
    expect(plugin.Err).toMatch(/invalid volume name/);
    expect(await admin.call('GET', '/volumes/..x')).toEqual({ status: 400, body: { Err: plugin.Err } });
  });

  test('a malformed JSON body is 400, an unknown endpoint 404, both with Err', async () => {
    const bad = await admin.call('POST', '/leases/x/release', '{not json');
    expect(bad.status).toBe(400);
    expect(typeof bad.body.Err).toBe('string');
    const unknown = await admin.call('GET', '/nothing-here');
    expect(unknown).toEqual({ status: 404, body: { Err: expect.stringContaining('unknown admin endpoint GET /nothing-here') } });
  });

  test('a conflict is 409: releasing a lease hostvol cannot judge without --force', async () => {
    await sb.call('/VolumeDriver.Create', { Name: 'app-c' });
    await sb.call('/VolumeDriver.Mount', { Name: 'app-c', ID: 'm1' });
    // The host's view, fixed: no process here can see containers' mounts (as in a PID namespace of its own).
    (await sb.daemon.ready).deps.inUse = async () => undefined;
    const res = await admin.call('POST', '/leases/app-c/release', { id: 'm1' });
    expect(res.status).toBe(409);
    expect(res.body.Err).toMatch(/^volume "app-c": lease\(s\) m1 not released/);
  });

  test('the client turns an Err into an error carrying the same words', async () => {
    await expect(admin.client.json('GET', '/volumes/missing-one')).rejects.toThrow('volume "missing-one" does not exist in hostvol');
  });
});

test('an admin socket another hostvol serves does not stop the plugin socket; it is logged', async () => {
  const lines: string[] = [];
  const log = require('pino')({ level: 'error' }, { write: (l: string) => lines.push(l) });
  const other = await sandbox({ adminSocket: sb.config.adminSocket }, { log });
  try {
    expect(other.daemon.admin?.admin).toBeUndefined();
    expect(await other.call('/VolumeDriver.Create', { Name: 'app-other' })).toEqual({});
    const logged = lines.map((l) => JSON.parse(l)).find((e) => e.msg.startsWith('admin API not served'));
    expect(logged).toMatchObject({ adminSocket: sb.config.adminSocket, err: expect.stringContaining('another process is already serving') });
    // the first daemon's admin API is untouched
    expect((await admin.call('GET', '/volumes')).status).toBe(200);
  } finally {
    await destroy(other);
  }
});

test('GET /info names the driver dockerd knows a legacy hostvol by: its socket\'s name', async () => {
  const info = (await admin.call('GET', '/info')).body;
  expect(info).toMatchObject({ managed: false, driver: 'hostvol', generation: 0, version: require('../../package.json').version });
});
