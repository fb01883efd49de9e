// The CLI's admin client: which socket it uses, and errors that say how to reach hostvol.
import * as os from 'node:os';
import * as path from 'node:path';
import { dockerSocketOf } from '../../src/admin/docker';
import { AdminClient, findAdminSocket, pluginRef } from '../../src/commands/client';

test('the socket comes from --admin-socket, then HOSTVOL_ADMIN_SOCKET, then the legacy default', async () => {
  expect(await findAdminSocket({ adminSocket: '/x/a.sock' }, { HOSTVOL_ADMIN_SOCKET: '/y/b.sock' })).toBe('/x/a.sock');
  expect(await findAdminSocket({}, { HOSTVOL_ADMIN_SOCKET: '/y/b.sock' })).toBe('/y/b.sock');
  expect(await findAdminSocket({}, {})).toBe('/run/hostvol/admin.sock');
});

test('--plugin asks dockerd for the plugin; an unreachable dockerd is named with what needed it', async () => {
  const sock = path.join(os.tmpdir(), `no-dockerd-${process.pid}.sock`);
  await expect(findAdminSocket({ plugin: 'hostvol', dockerHost: `unix://${sock}` }, {})).rejects.toThrow(
    `finding the admin socket of plugin hostvol needs dockerd, which does not answer at ${sock} (ENOENT)`,
  );
});

test('a plugin reference gets :latest unless it has a tag, as dockerd names the driver', () => {
  expect(pluginRef('hostvol')).toBe('hostvol:latest');
  expect(pluginRef('hostvol:0.1.0')).toBe('hostvol:0.1.0');
  expect(pluginRef('registry:5000/hostvol')).toBe('registry:5000/hostvol:latest');
});

test('DOCKER_HOST is a unix:// URL or a path; TCP is refused by name', () => {
  expect(dockerSocketOf(undefined)).toBe('/var/run/docker.sock');
  expect(dockerSocketOf('unix:///run/d.sock')).toBe('/run/d.sock');
  expect(dockerSocketOf('/run/d.sock')).toBe('/run/d.sock');
  expect(() => dockerSocketOf('tcp://1.2.3.4:2375')).toThrow('docker host "tcp://1.2.3.4:2375" is not a Unix socket');
});

test('a missing admin socket is an error that says how to point the CLI at hostvol', async () => {
  const c = new AdminClient('/nonexistent/admin.sock');
  await expect(c.json('GET', '/volumes')).rejects.toThrow(
    "cannot reach hostvol's admin socket /nonexistent/admin.sock (ENOENT): is hostvol serve running? For a managed plugin pass --plugin NAME; else --admin-socket or HOSTVOL_ADMIN_SOCKET",
  );
  await c.close();
});
