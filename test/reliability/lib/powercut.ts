// Controller for lazyfs (lib/powercut/lazyfs.py): a FUSE layer over a backing directory that
// keeps only what was synced when told to "cut the power". Its file header states the exact model
// (what fsync/fsyncdir make durable); powercut-layer.test.ts proves the layer follows it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { mountTable } from './sandbox';

export const PYTHON = '/usr/bin/python3';
export const LAZYFS = path.join(__dirname, 'powercut', 'lazyfs.py');
/** What the install step must run for the power-cut tests (Debian package names). */
export const INSTALL = 'apt-get install -y --no-install-recommends fuse3 python3-pyfuse3';

/** Counters of one lazyfs process; `discardedWriteBytes` is set by the cut it answers. */
export interface LayerStats {
  fsyncs: number;
  fsyncdirs: number;
  discardedWriteBytes: number;
  cuts: number;
}

/** Why lazyfs cannot run here (with the fix), or null when it can. */
export function powercutToolsMissing(): string | null {
  if (!fs.existsSync('/dev/fuse')) return '/dev/fuse is missing: the kernel needs FUSE (modprobe fuse), and a container needs --device /dev/fuse';
  const probe = spawnSync(PYTHON, ['-c', 'import pyfuse3, trio'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    const why = probe.error ? probe.error.message : probe.stderr.trim().split('\n').pop();
    return `${PYTHON} cannot import pyfuse3 and trio (${why}): install them with \`${INSTALL}\``;
  }
  return null;
}

function mounted(mountpoint: string): boolean {
  return mountTable().some((m) => m.target === mountpoint && m.fstype === 'fuse.lazyfs');
}

/** One mounted lazyfs at `mountpoint` over `backing`; `cut()` swaps in a fresh one. */
export class PowerCut {
  private child!: ChildProcess;
  private stderr = '';
  private readonly controlDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lazyfs-'));
  private readonly control = path.join(this.controlDir, 'ctl');

  private constructor(readonly backing: string, readonly mountpoint: string) {}

  /** Mounts lazyfs and resolves once it serves (all of `backing` counts as durable from here). */
  static async mount(backing: string, mountpoint: string): Promise<PowerCut> {
    const missing = powercutToolsMissing();
    if (missing) throw new Error(missing);
    const pc = new PowerCut(path.resolve(backing), path.resolve(mountpoint));
    await pc.start();
    return pc;
  }

  private start(): Promise<void> {
    this.stderr = '';
    const child = spawn(PYTHON, [LAZYFS, this.backing, this.mountpoint, this.control], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        child.kill('SIGKILL'); // a lazyfs that is not ready is of no use, and must not stay behind
        reject(new Error(`lazyfs over ${this.backing} at ${this.mountpoint} ${why}; its stderr:\n${this.stderr}`));
      };
      const timer = setTimeout(() => fail('did not get ready within 20s'), 20_000);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (!out.includes('ready\n')) return;
        clearTimeout(timer);
        if (mounted(this.mountpoint)) resolve();
        else fail('said ready but /proc/self/mountinfo shows no fuse.lazyfs there');
      });
      child.once('exit', (code, sig) => {
        clearTimeout(timer);
        fail(`exited (code ${code}, signal ${sig}) before it was ready`);
      });
    });
  }

  /** A control request; lazyfs answers within a tick of its loop, so `timeoutMs` means it is stuck. */
  private request(cmd: 'cut' | 'stats', timeoutMs = 60_000): Promise<LayerStats> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.control);
      let reply = '';
      const timer = setTimeout(() => {
        reject(new Error(`lazyfs did not answer ${cmd} within ${timeoutMs} ms: ${this.diagnose()}`));
        sock.destroy();
      }, timeoutMs);
      sock.on('data', (d) => (reply += d.toString()));
      sock.on('error', (e) => reject(new Error(`lazyfs control socket ${this.control}: ${e.message}`)));
      sock.on('close', () => {
        clearTimeout(timer);
        try {
          const r = JSON.parse(reply) as LayerStats & { ok: boolean; error?: string };
          if (!r.ok) reject(new Error(`lazyfs ${cmd} failed: ${r.error}; its stderr:\n${this.stderr}`));
          else resolve(r);
        } catch {
          reject(new Error(`lazyfs ${cmd}: no reply (${JSON.stringify(reply)}); its stderr:\n${this.stderr}`));
        }
      });
      sock.end(`${cmd}\n`);
    });
  }

  /** The running lazyfs process, if any. */
  get pid(): number | undefined {
    return this.child.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  /** Where lazyfs is (its kernel wait channel and syscall: fuse_dev_do_read = waiting for a request)
   * and the end of its stderr: what a failure message needs to tell a stuck layer from a dead one. */
  diagnose(): string {
    const pid = this.pid;
    const proc = (f: string) => {
      try {
        return fs.readFileSync(`/proc/${pid}/${f}`, 'utf8').trim().split(' ')[0];
      } catch {
        return '?';
      }
    };
    const where = pid === undefined ? `exited (${this.child.exitCode ?? this.child.signalCode})` : `pid ${pid}, wchan ${proc('wchan')}, syscall ${proc('syscall')}`;
    return `lazyfs at ${this.mountpoint}: ${where}, mounted: ${mounted(this.mountpoint)}; stderr: ${this.stderr.trim().slice(-2000) || '(empty)'}`;
  }

  stats(timeoutMs?: number): Promise<LayerStats> {
    return this.request('stats', timeoutMs);
  }

  /** The power cut: lazyfs freezes, rewrites `backing` to the durable state and exits, which breaks
   * every open file and cwd on the mount (ENOTCONN); then a fresh lazyfs is mounted at the same
   * place showing exactly what was durable. Resolves to the counters of the cut process. */
  async cut(): Promise<LayerStats> {
    const exited = new Promise((r) => this.child.once('exit', r));
    const stats = await this.request('cut');
    await exited;
    this.detach();
    await this.start();
    return stats;
  }

  /** Unmounts and stops lazyfs. Unsynced changes stay in `backing` (this is no cut). */
  async unmount(): Promise<void> {
    const exited = this.child.exitCode === null && this.child.signalCode === null ? new Promise((r) => this.child.once('exit', r)) : null;
    this.detach();
    if (exited) {
      const killer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    }
    fs.rmSync(this.controlDir, { recursive: true, force: true });
  }

  /** Stops lazyfs at once (SIGKILL aborts its FUSE connection: every waiter gets ENOTCONN) and
   * unmounts it: what a failed round leaves behind must not keep a dead mount around. */
  abort(): void {
    this.child.kill('SIGKILL');
    this.detach();
  }

  /** Lazy unmount: anything still using the old mount (open fds, cwd, bind mounts) cannot block it. */
  private detach(): void {
    while (mounted(this.mountpoint)) {
      const r = spawnSync('umount', ['-l', this.mountpoint], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`umount -l ${this.mountpoint}: ${r.stderr.trim()}`);
    }
  }
}
