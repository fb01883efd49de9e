// Runs the built `hostvol serve` (dist/cli.js) as a child process, the way it runs in production,
// so a test can SIGKILL it at any moment and start it again on the same socket and state.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client, TransportError } from './client';

export const REPO = path.resolve(__dirname, '../../..');
/** RELIABILITY_CLI runs the suite against another build (e.g. an older commit, to see a test fail). */
export const CLI = process.env.RELIABILITY_CLI ?? path.join(REPO, 'dist/cli.js');

/** Fails with a clear message when dist/ is missing or older than src/ (the suite would test old code). */
export function requireBuild(): void {
  if (process.env.RELIABILITY_CLI) return;
  if (!fs.existsSync(CLI)) {
    throw new Error(`${CLI} is missing: run \`npm run build\` (or \`make build\`) before the reliability suite`);
  }
  const sources = fs.readdirSync(path.join(REPO, 'src'), { recursive: true }) as string[];
  for (const f of sources.filter((f) => f.endsWith('.ts'))) {
    const js = path.join(REPO, 'dist', f.replace(/\.ts$/, '.js'));
    const src = path.join(REPO, 'src', f);
    if (!fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(src).mtimeMs) {
      throw new Error(`dist/ is older than src/${f}: run \`npm run build\` before the reliability suite`);
    }
  }
}

export interface ServeConfig {
  socket: string;
  dataRoot: string;
  stateDir: string;
  allowPaths?: string[];
  bootIdFile: string;
  logFile: string;
  selinux?: 'on' | 'off' | 'auto';
  env?: NodeJS.ProcessEnv;
  extraArgs?: string[];
}

export function serveArgs(c: ServeConfig): string[] {
  return [
    CLI, 'serve', '--socket', c.socket, '--data-root', c.dataRoot, '--state-dir', c.stateDir,
    // One admin socket per served socket: concurrent runs must not contend for /run/hostvol/admin.sock.
    '--admin-socket', `${c.socket.replace(/\.sock$/, '')}-admin.sock`,
    ...(c.allowPaths ?? []).flatMap((p) => ['--allow-path', p]),
    '--log-level', 'info', '--selinux', c.selinux ?? 'off', '--boot-id-file', c.bootIdFile,
    ...(c.extraArgs ?? []),
  ];
}

/** Every child started here, so afterAll (or a crashed test) can kill what is left. */
const children = new Set<ChildProcess>();

export function killAllServes(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
}

export class Serve {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly client: Client;

  private constructor(
    readonly config: ServeConfig,
    readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.client = new Client(config.socket);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Spawns `hostvol serve`; its stdout and stderr are appended to config.logFile. */
  static spawn(config: ServeConfig): Serve {
    const fd = fs.openSync(config.logFile, 'a');
    const child = spawn(process.execPath, serveArgs(config), {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...config.env },
    });
    fs.closeSync(fd);
    children.add(child);
    child.once('exit', () => children.delete(child));
    return new Serve(config, child);
  }

  /** Spawns and waits until the store is loaded (List answers without Err). */
  static async start(config: ServeConfig, timeoutMs = 20_000): Promise<Serve> {
    const s = Serve.spawn(config);
    await s.waitReady(timeoutMs);
    return s;
  }

  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async waitReady(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (!this.alive()) {
        throw new Error(`hostvol serve exited (${this.child.exitCode ?? this.child.signalCode}) before it was ready:\n${this.logTail()}`);
      }
      if (fs.existsSync(this.config.socket)) {
        try {
          const r = await this.client.post('/VolumeDriver.List', {}, { timeoutMs: 5000 });
          if (r.status === 200 && r.json && !('Err' in r.json)) return;
          last = r.text;
        } catch (err) {
          if (!(err instanceof TransportError)) throw err;
          last = err.message;
        }
      }
      await sleep(10);
    }
    throw new Error(`hostvol serve not ready after ${timeoutMs} ms (${last}):\n${this.logTail()}`);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.alive()) this.child.kill(signal);
    await this.exited;
    await this.client.close().catch(() => undefined);
  }

  logTail(lines = 30): string {
    try {
      return fs.readFileSync(this.config.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

/** Runs `hostvol serve` expecting it to exit by itself (start-up refused); returns its exit code and output. */
export async function serveExpectingExit(config: ServeConfig, timeoutMs = 20_000): Promise<{ code: number | null; output: string; timedOut: boolean }> {
  const child = spawn(process.execPath, serveArgs(config), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...config.env } });
  children.add(child);
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  clearTimeout(timer);
  children.delete(child);
  return { code, output, timedOut };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
