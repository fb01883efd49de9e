// The socket: created with mode 0660 in a directory made on demand; a live socket is never taken
// over; a stale one is replaced; shutdown lets requests finish and removes the socket.
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { startDaemon } from '../../src/daemon';
import { destroy, sandbox, type Sandbox } from './support';

let sb: Sandbox;
beforeAll(async () => {
  sb = await sandbox();
});
afterAll(() => destroy(sb));

test('the socket is 0660, owned by the server user, in a directory made for it', async () => {
  const st = fs.statSync(sb.config.socket);
  expect(st.isSocket()).toBe(true);
  expect(st.mode & 0o777).toBe(0o660);
  expect(st.uid).toBe(process.getuid!());
});

test('a second server on the same socket refuses to start and leaves the first serving', async () => {
  const other = { ...sb.config, stateDir: path.join(sb.dir, 'state2'), dataRoot: path.join(sb.dir, 'data2') };
  await expect(startDaemon(other)).rejects.toThrow(/another process is already serving .*hostvol\.sock/);
  expect(await sb.call('/VolumeDriver.Capabilities', {})).toEqual({ Capabilities: { Scope: 'local' } });
});

test('a second server on the same state directory refuses to start', async () => {
  const other = { ...sb.config, socket: path.join(sb.dir, 'run', 'other.sock') };
  await expect(startDaemon(other)).rejects.toThrow(/state directory .* is in use by another hostvol process/);
  expect(fs.existsSync(other.socket)).toBe(false);
});

/** For a test that stops its daemon: one of its own, so the shared one keeps serving the others. */
async function withOwnDaemon(fn: (own: Sandbox) => Promise<void>): Promise<void> {
  const own = await sandbox();
  try {
    await fn(own);
  } finally {
    await destroy(own);
  }
}

test('a stale socket left by a dead process is replaced', () =>
  withOwnDaemon(async (own) => {
    await own.stop();
    // A process killed with SIGKILL leaves its socket file behind with nobody accepting on it.
    const code = `require('net').createServer().listen(${JSON.stringify(own.config.socket)}, () => console.log('up'))`;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => child.stdout!.once('data', r));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(fs.statSync(own.config.socket).isSocket()).toBe(true);
    await own.restart();
    expect(await own.call('/Plugin.Activate')).toEqual({ Implements: ['VolumeDriver'] });
  }));

test('a file that is not a socket is never deleted', async () => {
  const other = { ...sb.config, socket: path.join(sb.dir, 'notasocket'), stateDir: path.join(sb.dir, 'state3') };
  fs.writeFileSync(other.socket, 'important');
  await expect(startDaemon(other)).rejects.toThrow(/exists and is not a socket/);
  expect(fs.readFileSync(other.socket, 'utf8')).toBe('important');
});

test('shutdown removes the socket file', () =>
  withOwnDaemon(async (own) => {
    expect(fs.existsSync(own.config.socket)).toBe(true);
    await own.stop();
    expect(fs.existsSync(own.config.socket)).toBe(false);
  }));
