// The Unix socket's lifecycle: its directory, refusing to steal a live socket, replacing a stale
// one, permissions from the first instant, and a shutdown that lets requests in flight finish.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { HostvolError } from '../errors';

/** Whether something answers on `socketPath`: 'live', 'stale' (a socket file nobody serves) or 'absent'. */
export async function probeSocket(socketPath: string): Promise<'live' | 'stale' | 'absent'> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return 'absent';
  }
  if (!st.isSocket()) {
    throw new HostvolError(`${socketPath} exists and is not a socket; move it away or choose another --socket`);
  }
  return new Promise((resolve) => {
    const conn = net.connect(socketPath);
    const done = (state: 'live' | 'stale') => {
      conn.destroy();
      resolve(state);
    };
    conn.once('connect', () => done('live'));
    conn.once('error', () => done('stale'));
    conn.setTimeout(2000, () => done('live')); // accepted but silent: someone holds it
  });
}

const busy = (socketPath: string) =>
  new HostvolError(`another process is already serving ${socketPath}; stop it first or choose another --socket`);

/**
 * Holds an abstract Unix socket named after `socketPath` while the server runs. Without it, two
 * processes starting at once over a stale socket both see it stale and both replace it, and one of
 * them serves nobody. The kernel frees the name when the process dies, so SIGKILL leaves nothing stale.
 */
async function claim(socketPath: string): Promise<net.Server> {
  // Keyed by the directory's device and inode, not its path: one path in two mount namespaces (two
  // dockerds on one host, each with its own /run/docker/plugins) is two different sockets.
  const dir = fs.statSync(path.dirname(socketPath));
  const key = `${dir.dev}:${dir.ino}/${path.basename(socketPath)}`;
  const name = `\0hostvol-${crypto.createHash('sha256').update(key).digest('hex').slice(0, 48)}`;
  const lock = net.createServer();
  await new Promise<void>((resolve, reject) => {
    lock.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? busy(socketPath) : err));
    lock.listen(name, () => resolve());
  });
  lock.unref();
  return lock;
}

/** Listens on `socketPath` with `mode`, after removing a stale socket; refuses a live one. */
export async function listenUnix(server: http.Server, socketPath: string, mode = 0o660): Promise<void> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 });
  const lock = await claim(socketPath);
  try {
    await listenClaimed(server, socketPath, mode);
  } catch (err) {
    lock.close();
    throw err;
  }
  server.once('close', () => lock.close());
}

async function listenClaimed(server: http.Server, socketPath: string, mode: number): Promise<void> {
  const state = await probeSocket(socketPath);
  if (state === 'live') throw busy(socketPath);
  // A dead plugin's socket makes every `docker volume ls` wait 15 s; replace it.
  if (state === 'stale') fs.unlinkSync(socketPath);
  // The umask covers the moment between bind(2) and chmod(2), so the socket is never wider than `mode`.
  const oldMask = process.umask(0o777 & ~mode);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(oldMask);
  }
  fs.chmodSync(socketPath, mode);
}

/** Stops accepting and lets requests in flight finish (up to `graceMs`); Node unlinks the socket file. */
export async function closeServer(server: http.Server, graceMs = 10_000): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(timer);
}
