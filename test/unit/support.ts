// Test support: a real hostvol daemon on a real Unix socket in a temp dir, and an HTTP client that
// speaks to it the way dockerd does (POST, JSON body, no Content-Type).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { Agent, request } from 'undici';
import { defaults, startDaemon, type Config, type Daemon } from '../../src/daemon';
import type { Labeler } from '../../src/host/labels';

export interface Sandbox {
  dir: string;
  config: Config;
  daemon: Daemon;
  call(route: string, body?: unknown): Promise<Record<string, any>>;
  raw(route: string, body: string | Buffer, headers?: Record<string, string>): Promise<{ status: number; text: string }>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A daemon's config with every file under `dir` (boot id in dir/boot_id) and no dockerd. */
export function configUnder(dir: string, overrides: Partial<Config> = {}): Config {
  return {
    ...defaults,
    socket: path.join(dir, 'run', 'hostvol.sock'),
    adminSocket: path.join(dir, 'run', 'admin.sock'),
    // No dockerd answers here unless a test starts one: what needs dockerd must say so.
    dockerHost: `unix://${path.join(dir, 'run', 'no-dockerd.sock')}`,
    dataRoot: path.join(dir, 'data'),
    stateDir: path.join(dir, 'state'),
    logLevel: 'silent',
    selinux: 'off',
    bootIdFile: path.join(dir, 'boot_id'),
    ...overrides,
  };
}

export async function sandbox(overrides: Partial<Config> = {}, inject: { labeler?: Labeler; log?: pino.Logger } = {}): Promise<Sandbox> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-'));
  fs.writeFileSync(path.join(dir, 'boot_id'), 'boot-1\n');
  const config = configUnder(dir, overrides);
  let agent = new Agent({ connect: { socketPath: config.socket } });
  let running = true;
  const log = pino({ level: 'silent' });
  const deps = { log, ...inject };
  // The admin socket listens right after the plugin socket; tests of it start once it does.
  const start = async () => {
    const daemon = await startDaemon(config, deps);
    await daemon.adminReady;
    return daemon;
  };
  const sb: Sandbox = {
    dir,
    config,
    daemon: await start(),
    async raw(route, body, headers = {}) {
      const res = await request(`http://hostvol${route}`, { method: 'POST', body, headers, dispatcher: agent });
      return { status: res.statusCode, text: await res.body.text() };
    },
    async call(route, body) {
      const res = await sb.raw(route, body === undefined ? '' : `${JSON.stringify(body)}\n`);
      expect(res.status).toBe(200);
      return JSON.parse(res.text);
    },
    async restart() {
      await sb.stop();
      agent = new Agent({ connect: { socketPath: config.socket } });
      sb.daemon = await start();
      running = true;
    },
    async stop() {
      if (!running) return;
      running = false;
      await agent.close();
      await sb.daemon.close();
    },
  };
  return sb;
}

/** Stops the daemon, unmounts anything left below the sandbox and deletes it. */
export async function destroy(sb: Sandbox): Promise<void> {
  await sb.stop().catch(() => undefined);
  await unmountAndRemove(sb.dir);
}

/** Detaches every mount below `dir` (deepest first) and deletes the directory. */
export async function unmountAndRemove(dir: string): Promise<void> {
  const { readMounts } = await import('../../src/host/mountinfo');
  for (const m of (await readMounts()).map((e) => e.mountPoint).filter((p) => p.startsWith(`${dir}/`)).reverse()) {
    try {
      require('node:child_process').execFileSync('/usr/bin/umount', ['-l', m], { stdio: 'ignore' });
    } catch {
      // gone with a mount above it that was detached first
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

export const isRoot = process.getuid?.() === 0;
