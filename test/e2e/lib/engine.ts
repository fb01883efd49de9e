// A private dockerd per test file (harness doc section 2). A small "holder" process owns a new mount and
// network namespace with private plugin discovery directories, /run/containerd hidden and only `lo`;
// dockerd is started inside it with nsenter, so the daemon can be stopped and started again (restart
// scenarios) while the namespace, and a legacy plugin living in it, stay. Teardown follows section 6.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { cgroupDirs, killMountNs, removeCgroups, sweepStaleRuns, unmountUnder } from './cleanup';
import { buildImages } from './images';
import {
  cmdline, isAlive, mountNs, mountPoints, pidsInMountNs, readPid, run, signal, terminate, waitFor, type RunResult,
} from './proc';

export const DOCKER_CLI = process.env.HOSTVOL_E2E_DOCKER || 'docker';
const PLUGIN_DIRS = { run: '/run/docker/plugins', etc: '/etc/docker/plugins', lib: '/usr/lib/docker/plugins' };

export interface EngineOptions {
  /** Import bb:latest and bbseed:latest (default true). */
  images?: boolean;
  liveRestore?: boolean;
  /**
   * Sweep runs left behind by dead test processes first (default true). Engines started in parallel must
   * pass false (after one sweepStaleRuns() of their own): a sweep may see the other's BASE before its
   * owner.pid is written.
   */
  sweep?: boolean;
}
export interface DockerOptions {
  allowFail?: boolean;
  input?: string | Buffer;
  timeoutMs?: number;
}
export type Finalizer = () => Promise<void> | void;

export class Engine {
  readonly base: string;
  readonly sock: string;
  readonly cgroupName: string;
  /** Host-side directories the daemon sees as /run/docker/plugins, /etc/docker/plugins, /usr/lib/docker/plugins. */
  readonly pluginDirs: { run: string; etc: string; lib: string };
  holderPid: number | undefined;
  /** Mount namespace of the run ("mnt:[...]"), shared by dockerd, its containerd and legacy plugins. */
  ns: string | undefined;
  dockerdPid: number | undefined;
  liveRestore = false;
  /** If set, teardown copies the *.log files of BASE here before deleting BASE (env HOSTVOL_E2E_KEEP_LOGS). */
  keepLogsIn: string | undefined = process.env.HOSTVOL_E2E_KEEP_LOGS || undefined;
  private finalizers: Finalizer[] = [];
  private tornDown = false;
  private finished = false;

  constructor(readonly id: string) {
    this.base = `/tmp/hv-e2e-${id}`;
    this.sock = `${this.base}/docker.sock`;
    this.cgroupName = `hv-e2e-${id}`;
    this.pluginDirs = { run: `${this.base}/plugins/run`, etc: `${this.base}/plugins/etc`, lib: `${this.base}/plugins/lib` };
  }

  get dockerdLog(): string {
    return `${this.base}/dockerd.log`;
  }

  env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: `unix://${this.sock}`, DOCKER_CONFIG: `${this.base}/cli` };
    for (const k of ['DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_API_VERSION']) delete env[k];
    return env;
  }

  /** Run the docker CLI against this daemon. Throws on a non-zero exit unless allowFail. */
  docker(args: string[], opts: DockerOptions = {}): Promise<RunResult> {
    return run(DOCKER_CLI, args, { env: this.env(), timeoutMs: opts.timeoutMs ?? 90_000, ...opts });
  }

  /** argv prefix to run a command inside the run's mount (and optionally network) namespace. */
  nsenter(net = false): string[] {
    if (!this.holderPid) throw new Error('engine namespace not running');
    return ['nsenter', '-t', String(this.holderPid), '-m', ...(net ? ['-n'] : []), '--'];
  }

  /** Mount points under `prefix` as dockerd (and a legacy plugin started in its namespace) sees them. */
  nsMounts(prefix: string): string[] {
    return this.holderPid ? mountPoints(this.holderPid, prefix) : [];
  }

  /** Registered by the plugin side; runs after the daemon is gone (section 6, step 6), last registered first. */
  addFinalizer(fn: Finalizer): void {
    this.finalizers.unshift(fn);
  }

  /** Last lines of dockerd's log, without the grpc and containerd plugin-loading chatter. */
  logTail(lines = 60): string {
    try {
      const all = fs.readFileSync(this.dockerdLog, 'utf8').split('\n');
      const noise = /module=grpc|loading plugin|containerd config version/;
      return all.filter((l) => !noise.test(l)).slice(-lines - 1).join('\n');
    } catch {
      return '(no dockerd log)';
    }
  }

  async startNamespace(): Promise<void> {
    for (const d of ['root', 'exec', 'empty', 'cli', 'img', 'plugins/run', 'plugins/etc', 'plugins/lib']) {
      fs.mkdirSync(path.join(this.base, d), { recursive: true });
    }
    // Targets of the private bind mounts; /run/containerd is always covered so that dockerd starts a
    // private containerd whose shim sockets (/run/containerd/s/...) stay inside BASE.
    for (const d of [...Object.values(PLUGIN_DIRS), '/run/containerd']) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(`${this.base}/daemon.json`, '{}\n');
    fs.writeFileSync(`${this.base}/owner.pid`, `${process.pid}\n`);
    const script =
      'mount --bind "$0/plugins/run" /run/docker/plugins && mount --bind "$0/plugins/etc" /etc/docker/plugins && ' +
      'mount --bind "$0/plugins/lib" /usr/lib/docker/plugins && mount --bind "$0/empty" /run/containerd && ' +
      '/bin/busybox ip link set lo up && : > "$0/ns-ready" && exec sleep infinity';
    const log = fs.openSync(`${this.base}/holder.log`, 'a');
    const child = spawn('unshare', ['--mount', '--net', '--propagation', 'slave', '--', 'sh', '-c', script, this.base], {
      detached: true,
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    child.unref();
    this.holderPid = child.pid;
    fs.writeFileSync(`${this.base}/holder.pid`, `${child.pid}\n`);
    await waitFor('engine namespace', () => {
      if (!isAlive(this.holderPid)) throw new Error(`namespace holder died: ${fs.readFileSync(`${this.base}/holder.log`, 'utf8')}`);
      return fs.existsSync(`${this.base}/ns-ready`);
    }, 10_000);
    this.ns = mountNs(this.holderPid!);
    if (!this.ns || this.ns === mountNs('self')) throw new Error('holder is not in a private mount namespace');
    fs.writeFileSync(`${this.base}/ns`, `${this.ns}\n`);
  }

  async startDaemon(opts: { liveRestore?: boolean } = {}): Promise<void> {
    this.liveRestore = !!opts.liveRestore;
    const b = this.base;
    const args = [
      ...this.nsenter(true),
      'dockerd', '--host', `unix://${this.sock}`, '--pidfile', `${b}/docker.pid`, '--data-root', `${b}/root`,
      '--exec-root', `${b}/exec`, '--config-file', `${b}/daemon.json`,
      '--containerd-namespace', this.cgroupName, '--containerd-plugins-namespace', `${this.cgroupName}-plugins`,
      '--bridge', 'none', '--iptables=false', '--ip6tables=false', '--ip-forward=false', '--ip-masq=false',
      '--cgroup-parent', `/${this.cgroupName}`, '--shutdown-timeout', '5',
      ...(this.liveRestore ? ['--live-restore'] : []),
    ];
    // After a dockerd crash its containerd dies too (parent-death signal) and is re-parented to PID 1; where
    // PID 1 is not a reaping init the zombie keeps its pid "alive", and the next dockerd would wait for it
    // forever ("containerd is still running" ... "timeout waiting for containerd to start").
    const containerdPidFile = `${b}/exec/containerd/containerd.pid`;
    const oldContainerd = readPid(containerdPidFile);
    if (oldContainerd && !isAlive(oldContainerd)) fs.rmSync(containerdPidFile, { force: true });
    fs.appendFileSync(this.dockerdLog, `\n===== [harness] ${new Date().toISOString()} starting dockerd${this.liveRestore ? ' --live-restore' : ''}\n`);
    const log = fs.openSync(this.dockerdLog, 'a');
    // nsenter execs dockerd (no --fork), so child.pid is dockerd's pid.
    const child = spawn(args[0], args.slice(1), { detached: true, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    child.unref();
    this.dockerdPid = child.pid;
    await waitFor('dockerd to answer /_ping', async () => {
      if (!isAlive(this.dockerdPid)) throw new Error(`dockerd exited; log tail:\n${this.logTail(30)}`);
      return (await ping(this.sock)) === 'OK';
    }, 30_000, 50);
  }

  /**
   * Stop dockerd. SIGTERM: graceful, wait up to 15 s, then SIGKILL dockerd and its private containerd (and
   * wait for both). SIGKILL: a crash; containerd and the shims stay, as they would, and the next dockerd
   * reconnects to them.
   */
  async stopDaemon(sig: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const pid = this.dockerdPid ?? readPid(`${this.base}/docker.pid`);
    fs.appendFileSync(this.dockerdLog, `\n===== [harness] ${new Date().toISOString()} stopping dockerd with ${sig}\n`);
    if (sig === 'SIGKILL') {
      signal(pid, 'SIGKILL');
      await waitFor('dockerd to die', () => !isAlive(pid), 5000);
      // dockerd 20.10 gives its containerd a parent-death signal: wait for it to go (if it does)
      const cpid = readPid(`${this.base}/exec/containerd/containerd.pid`);
      await waitFor('containerd to follow dockerd', () => !isAlive(cpid), 3000).catch(() => undefined);
    } else if (await terminate(pid, 15_000)) {
      await terminate(readPid(`${this.base}/exec/containerd/containerd.pid`), 0);
    }
    this.dockerdPid = undefined;
  }

  async restartDaemon(opts: { liveRestore?: boolean; signal?: 'SIGTERM' | 'SIGKILL' } = {}): Promise<void> {
    await this.stopDaemon(opts.signal ?? 'SIGTERM');
    await this.startDaemon({ liveRestore: opts.liveRestore ?? this.liveRestore });
  }

  /** Teardown in the order of harness doc section 6. Idempotent. Returns what had to be cleaned by force. */
  async teardown(): Promise<string[]> {
    if (this.tornDown) return [];
    this.tornDown = true;
    const notes: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (e) {
        notes.push(`${what}: ${(e as Error).message.split('\n')[0]}`);
      }
    };
    if (isAlive(this.dockerdPid)) {
      const q = { allowFail: true, timeoutMs: 60_000 };
      await step('containers', async () => {
        const ids = (await this.docker(['ps', '-aq'], q)).stdout.split('\n').filter(Boolean);
        if (ids.length) await this.docker(['rm', '-f', '-v', ...ids], q);
      });
      await step('volumes', async () => {
        const vols = (await this.docker(['volume', 'ls', '-q'], q)).stdout.split('\n').filter(Boolean);
        if (vols.length) await this.docker(['volume', 'rm', '-f', ...vols], q);
      });
      await step('managed plugins', async () => {
        const ps = (await this.docker(['plugin', 'ls', '-q'], q)).stdout.split('\n').filter(Boolean);
        for (const p of ps) await this.docker(['plugin', 'rm', '-f', p], q);
      });
    }
    this.liveRestore = false;
    await step('dockerd', () => this.stopDaemon('SIGTERM'));
    await step('containerd', () => terminate(readPid(`${this.base}/exec/containerd/containerd.pid`), 5000));
    await step('cgroup processes', () => removeCgroups(this.cgroupName));
    if (this.holderPid && isAlive(this.holderPid)) {
      const m = await unmountUnder(this.holderPid, this.base);
      // dockerd's own mounts under its data root are left behind by a crash or live-restore: not news
      const other = m.filter((p) => !(p + '/').startsWith(`${this.base}/root/`));
      if (other.length) notes.push(`unmounted in the engine namespace: ${other.join(' ')}`);
    }
    const hm = await unmountUnder('self', this.base);
    if (hm.length) notes.push(`unmounted in the host namespace: ${hm.join(' ')}`);
    if (this.keepLogsIn) {
      await step('keep logs', async () => {
        const dest = path.join(this.keepLogsIn!, this.cgroupName);
        fs.mkdirSync(dest, { recursive: true });
        for (const f of fs.readdirSync(this.base)) {
          if (f.endsWith('.log')) fs.copyFileSync(path.join(this.base, f), path.join(dest, f));
        }
      });
    }
    await step('rm BASE', async () => fs.rmSync(this.base, { recursive: true, force: true, maxRetries: 5 }));
    await step('cgroups', async () => {
      const left = await removeCgroups(this.cgroupName);
      if (left.length) throw new Error(`cgroups left: ${left.join(' ')}`);
    });
    for (const f of this.finalizers) await step('finalizer', async () => f());
    // the holder goes last; with it the namespace (and every mount hostvol or dockerd left in it) is gone
    const own = [this.holderPid, this.dockerdPid, readPid(`${this.base}/hostvol.pid`)];
    const stray = await killMountNs(this.ns, own);
    if (stray.length) notes.push(`killed stray processes in the engine namespace: ${stray.join(' ')}`);
    this.finished = true;
    return notes;
  }

  /** What a teardown left behind: processes in the namespace, mounts or files under BASE, cgroups. */
  leftovers(): string[] {
    const out: string[] = [];
    if (fs.existsSync(this.base)) out.push(`directory ${this.base}`);
    const hostMounts = mountPoints('self', this.base);
    if (hostMounts.length) out.push(`host mounts: ${hostMounts.join(' ')}`);
    const pids = this.ns ? pidsInMountNs(this.ns) : [];
    if (pids.length) out.push(`processes: ${pids.map((p) => `${p} (${cmdline(p)})`).join(', ')}`);
    const cg = cgroupDirs(this.cgroupName);
    if (cg.length) out.push(`cgroups: ${cg.join(' ')}`);
    return out;
  }

  /** Best-effort synchronous SIGKILL of everything the run started (for process exit without teardown). */
  killAllSync(): void {
    // Only while the holder still pins the namespace: otherwise its inode may belong to somebody else.
    if (this.finished || !this.ns || !isAlive(this.holderPid) || mountNs(this.holderPid!) !== this.ns) return;
    for (const p of pidsInMountNs(this.ns)) if (p !== this.holderPid) signal(p, 'SIGKILL');
    signal(this.holderPid, 'SIGKILL');
  }
}

export function ping(sock: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.request({ socketPath: sock, path: '/_ping', method: 'GET', timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', () => resolve(''));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Start a private engine with the test images. On failure everything started so far is torn down. */
export async function startEngine(opts: EngineOptions = {}): Promise<Engine> {
  if (opts.sweep !== false) await sweepStaleRuns();
  const id = `${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const engine = new Engine(id);
  try {
    await engine.startNamespace();
    await engine.startDaemon({ liveRestore: opts.liveRestore });
    if (opts.images !== false) await buildImages(path.join(engine.base, 'img'), DOCKER_CLI, engine.env());
  } catch (e) {
    const tail = engine.logTail(40);
    await engine.teardown();
    throw new Error(`startEngine failed: ${(e as Error).message}\n--- dockerd log tail ---\n${tail}`);
  }
  return engine;
}

export { cgroupDirs, sweepStaleRuns };
