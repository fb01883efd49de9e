// Runs `hostvol serve` as a legacy plugin of one Engine, inside the engine's mount namespace (harness doc
// section 4 (b)), so the bind mounts it makes are visible to dockerd. The daemon discovers it at
// /run/docker/plugins/hostvol.sock, which is <BASE>/plugins/run/hostvol.sock on the host. Its debug log
// (one JSON line per request) is kept in <BASE>/hostvol.log across restarts and parsed by requests().
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { ADMIN_SOCKET_NAME } from '../../../src/admin/socket-paths';
import type { Engine } from './engine';
import { isAlive, run, signal, terminate, waitFor } from './proc';

/** The checkout's root: the nearest directory up with the Makefile (this file is also compiled into bench/out/). */
export const REPO = ((from: string): string => {
  for (let d = from; d !== path.dirname(d); d = path.dirname(d)) if (fs.existsSync(path.join(d, 'Makefile'))) return d;
  throw new Error(`no checkout (a directory with the Makefile) above ${from}`);
})(__dirname);
export const CLI_JS = path.join(REPO, 'dist/cli.js');
export const DRIVER = 'hostvol';
/** Volume-name prefix of the harness's own log-settling Get requests. */
export const SYNC_PREFIX = 'zz-harness-sync-';

export interface HostvolOptions {
  /** Extra --allow-path directories (host paths). The data root is always allowed by hostvol itself. */
  allowPaths?: string[];
  extraArgs?: string[];
}

export interface Req {
  /** Position in the log (0-based, across restarts). */
  seq: number;
  route: string;
  body: any;
  reply: any;
  /** When hostvol logged it (pino's epoch ms), i.e. right after it replied. */
  time: number;
  /** How long hostvol took to answer it: the request arrived at about `time - ms`. */
  ms: number;
}

export class Hostvol {
  readonly socket: string;
  readonly dataRoot: string;
  readonly stateDir: string;
  /** A directory outside the data root that is passed as --allow-path (for -o path=...). */
  readonly hostDir: string;
  readonly logFile: string;
  /** The admin API socket hostvol commands talk to (--admin-socket). */
  readonly adminSocket: string;
  pid: number | undefined;
  starts = 0;
  /** How the last hostvol process ended (exit code or signal), once it has. */
  lastExit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private syncSeq = 0;

  constructor(
    readonly engine: Engine,
    readonly opts: HostvolOptions = {},
  ) {
    this.socket = path.join(engine.pluginDirs.run, `${DRIVER}.sock`);
    this.dataRoot = path.join(engine.base, 'data');
    this.stateDir = path.join(engine.base, 'state');
    this.hostDir = path.join(engine.base, 'host');
    this.logFile = path.join(engine.base, 'hostvol.log');
    this.adminSocket = path.join(engine.base, 'admin.sock');
  }

  argv(): string[] {
    const allow = [this.hostDir, ...(this.opts.allowPaths ?? [])].flatMap((p) => ['--allow-path', p]);
    return [
      process.execPath, CLI_JS, 'serve', '--socket', `/run/docker/plugins/${DRIVER}.sock`,
      '--data-root', this.dataRoot, '--state-dir', this.stateDir, ...allow, '--log-level', 'debug',
      // Per engine, so parallel files never share the default /run/hostvol/admin.sock; dockerd is the engine's.
      '--admin-socket', this.adminSocket, '--docker-host', `unix://${this.engine.sock}`,
      ...(this.opts.extraArgs ?? []),
    ];
  }

  async start(): Promise<void> {
    if (isAlive(this.pid)) throw new Error('hostvol already running');
    for (const d of [this.dataRoot, this.stateDir, this.hostDir]) fs.mkdirSync(d, { recursive: true });
    fs.appendFileSync(this.logFile, `{"harness":"start","n":${this.starts + 1},"time":"${new Date().toISOString()}"}\n`);
    const log = fs.openSync(this.logFile, 'a');
    const args = [...this.engine.nsenter(false), ...this.argv()];
    const child = spawn(args[0], args.slice(1), { detached: true, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    child.unref();
    child.on('exit', (code, sig) => (this.lastExit = { code, signal: sig }));
    this.lastExit = undefined;
    this.pid = child.pid;
    this.starts++;
    fs.writeFileSync(path.join(this.engine.base, 'hostvol.pid'), `${child.pid}\n`);
    // Readiness = something accepts connections on the socket. No request is sent, so the request log
    // only ever contains what dockerd (or a test) sent.
    await waitFor('hostvol to listen on its socket', async () => {
      if (!isAlive(this.pid)) throw new Error(`hostvol exited during start; log tail:\n${this.logTail(30)}`);
      return connects(this.socket);
    }, 20_000, 50);
    // The admin socket follows once the store is loaded (daemon.ts): tests run hostvol commands next.
    await waitFor('hostvol to listen on its admin socket', async () => {
      if (!isAlive(this.pid)) throw new Error(`hostvol exited during start; log tail:\n${this.logTail(30)}`);
      return connects(this.adminSocket);
    }, 20_000, 50);
  }

  /** SIGTERM and wait (SIGKILL after 10 s). Returns true if hostvol exited by itself. */
  async stop(): Promise<boolean> {
    const wasRunning = isAlive(this.pid);
    const forced = await terminate(this.pid, 10_000);
    if (wasRunning) await waitFor('hostvol exit status', () => this.lastExit !== undefined, 2000).catch(() => undefined);
    this.pid = undefined;
    return !forced;
  }

  /** SIGKILL: no chance to clean up; the socket file stays behind like after a real crash. */
  async kill(): Promise<void> {
    signal(this.pid, 'SIGKILL');
    await waitFor('hostvol to die', () => !isAlive(this.pid), 5000);
    this.pid = undefined;
  }

  async restart(how: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    if (how === 'SIGKILL') await this.kill();
    else await this.stop();
    await this.start();
  }

  /** Stop and delete the socket (section 6, step 6). Used as the engine finalizer. */
  async shutdown(): Promise<void> {
    await this.stop();
    fs.rmSync(this.socket, { force: true });
  }

  /** Last lines of hostvol's log, without the harness's own log-settling requests. */
  logTail(lines = 60): string {
    const all = this.readLog().split('\n').filter((l) => !l.includes(SYNC_PREFIX));
    return all.length > 1 ? all.slice(-lines - 1).join('\n') : '(empty hostvol log)';
  }

  /**
   * Every request hostvol logged (level debug, msg "request"), in order, across restarts, once the log has
   * caught up (see settle()). Requests the harness itself sends to settle the log are left out.
   */
  async requests(): Promise<Req[]> {
    await this.settle();
    return this.readRequests();
  }

  /** Current log position; pass it to since() to look only at requests made after this point. */
  async mark(): Promise<number> {
    return (await this.requests()).length;
  }

  async since(mark: number): Promise<Req[]> {
    return (await this.requests()).slice(mark);
  }

  /**
   * hostvol logs a request right after sending the reply, and pino writes asynchronously, so a docker
   * command can return before the line of its last plugin call is in the file. Send one Get for a marker
   * name straight to the socket and wait for its line: the log is written in order, so everything that
   * happened before is then in the file too. (Get has no side effects; marker lines are filtered out.)
   */
  async settle(): Promise<void> {
    if (!isAlive(this.pid) || !(await connects(this.socket))) return;
    const name = `${SYNC_PREFIX}${++this.syncSeq}`;
    try {
      await this.call('/VolumeDriver.Get', { Name: name });
    } catch {
      return; // plugin went away meanwhile
    }
    await waitFor('hostvol log to catch up', () => this.readLog().includes(`"${name}"`), 5000, 5);
  }

  private readLog(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  private readRequests(): Req[] {
    const out: Req[] = [];
    for (const line of this.readLog().split('\n')) {
      if (!line.startsWith('{')) continue;
      let o: any;
      try {
        o = JSON.parse(line);
      } catch {
        continue;
      }
      if (o.msg !== 'request' || typeof o.route !== 'string') continue;
      if (typeof o.body?.Name === 'string' && o.body.Name.startsWith(SYNC_PREFIX)) continue;
      out.push({ seq: out.length, route: o.route, body: o.body ?? null, reply: o.reply ?? null, time: o.time, ms: o.ms });
    }
    return out;
  }

  /** Send a request straight to the plugin socket (bypassing dockerd), e.g. for out-of-band deletes. */
  call(route: string, body: unknown): Promise<any> {
    return callSocket(this.socket, route, body);
  }
}

/**
 * POST one plugin-protocol request to a volume plugin's Unix socket, bypassing dockerd, and parse the
 * JSON reply. Also reaches a managed plugin, whose socket is <run dir>/<plugin id>/<socket name>.
 */
export function callSocket(socket: string, route: string, body: unknown): Promise<any> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = http.request(
      { socketPath: socket, path: route, method: 'POST', headers: { 'Content-Length': Buffer.byteLength(payload) } },
      (res) => {
        let data = '';
        res.on('data', (d) => (data += d));
        res.on('end', () => {
          try {
            resolve(JSON.parse(data));
          } catch {
            reject(new Error(`${route}: HTTP ${res.statusCode}, non-JSON reply: ${data.slice(0, 200)}`));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function connects(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(sock);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Has the plugin been built? (`npm run build` produces dist/cli.js.) */
export function pluginBuilt(): boolean {
  return fs.existsSync(CLI_JS);
}

/** Start hostvol for `engine` and register its shutdown as the engine's last teardown step. */
export async function startHostvol(engine: Engine, opts: HostvolOptions = {}): Promise<Hostvol> {
  if (!pluginBuilt()) throw new Error(`${CLI_JS} is missing: run \`npm run build\` before the e2e suite`);
  const hv = new Hostvol(engine, opts);
  engine.addFinalizer(() => hv.shutdown());
  await hv.start();
  return hv;
}

/** The managed plugin as this checkout's version names it (plugin/config.json has no tag of its own). */
export const MANAGED_PLUGIN = `hostvol:${(JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version}`;

/**
 * Builds plugin/rootfs from this checkout's dist/ (plugin/build-rootfs.sh) and installs it in
 * `engine` as MANAGED_PLUGIN, enabled, with its state and host-paths directories in BASE
 * (`<prefix>-state`, `<prefix>-paths`) and HOSTVOL_STATE_SOURCE telling it where the state is on the
 * host. Returns the state directory's host path. Give the hook a few minutes: the build copies
 * node_modules. Remove it with `docker plugin rm -f MANAGED_PLUGIN`.
 */
export async function installManagedPlugin(engine: Engine, prefix: string): Promise<string> {
  const stateDir = path.join(engine.base, `${prefix}-state`);
  const pathsDir = path.join(engine.base, `${prefix}-paths`);
  fs.mkdirSync(stateDir);
  fs.mkdirSync(pathsDir);
  const built = await run('bash', ['plugin/build-rootfs.sh'], { cwd: REPO, allowFail: true });
  if (built.code !== 0) throw new Error(`plugin/build-rootfs.sh failed:\n${built.stderr}`);
  await engine.docker(['plugin', 'create', MANAGED_PLUGIN, path.join(REPO, 'plugin')], { timeoutMs: 120_000 });
  await engine.docker(['plugin', 'set', MANAGED_PLUGIN, `state.source=${stateDir}`, `HOSTVOL_STATE_SOURCE=${stateDir}`, `paths.source=${pathsDir}`, `HOSTVOL_HOST_PATHS=${pathsDir}`]);
  await engine.docker(['plugin', 'enable', MANAGED_PLUGIN]);
  // dockerd returns once the plugin socket answers; the admin socket beside it follows once the store is loaded.
  const id = (await engine.docker(['plugin', 'inspect', '-f', '{{.Id}}', MANAGED_PLUGIN])).stdout.trim();
  const adminSocket = path.join(engine.pluginDirs.run, id, ADMIN_SOCKET_NAME);
  await waitFor(`the managed plugin's admin socket ${adminSocket}`, () => connects(adminSocket), 20_000, 50);
  return stateDir;
}
