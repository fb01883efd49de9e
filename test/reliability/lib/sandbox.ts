// A throw-away directory tree per test file (data root, allowed paths, state dir, decoys outside),
// the mounts below it, and a filesystem snapshot to prove that nothing outside changed.
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { killAllServes } from './serve';

/** Mount points from /proc/self/mountinfo: target, per-mount options, type, and `root` (for a bind
 * mount of the root file system, the directory it shows). */
export function mountTable(): { target: string; root: string; options: string; fstype: string }[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-');
    out.push({ target: unescape(f[4]), root: unescape(f[3]).replace(/\/\/deleted$/, ''), options: f[5], fstype: f[sep + 1] });
  }
  return out;
}

export function inside(child: string, root: string): boolean {
  return child === root || child.startsWith(`${root}/`);
}

/** Mount points strictly below `dir` (or equal to it), each once per stacked mount. */
export function mountsUnder(dir: string): string[] {
  return mountTable().map((m) => m.target).filter((t) => inside(t, dir));
}

export function umountAllUnder(dir: string): void {
  for (let i = 0; i < 100; i++) {
    const ms = mountsUnder(dir).sort((a, b) => b.length - a.length);
    if (ms.length === 0) return;
    try {
      execFileSync('umount', [ms[0]], { stdio: 'ignore' });
    } catch {
      execFileSync('umount', ['-l', ms[0]], { stdio: 'ignore' });
    }
  }
}

export class Sandbox {
  readonly root: string;

  constructor(tag: string) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), `hostvol-rel-${tag}-`));
  }

  /** `mkdir -p` of a path below the sandbox; returns it. */
  dir(...parts: string[]): string {
    const p = path.join(this.root, ...parts);
    fs.mkdirSync(p, { recursive: true });
    return p;
  }

  path(...parts: string[]): string {
    return path.join(this.root, ...parts);
  }

  /** A boot id file (the daemon drops leases recorded under another boot id). */
  bootId(id = crypto.randomUUID()): string {
    const f = this.path('boot_id');
    fs.writeFileSync(f, `${id}\n`);
    return f;
  }

  mountTmpfs(dir: string, size: string, extra = ''): void {
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755${extra ? `,${extra}` : ''}`, 'tmpfs', dir]);
  }

  cleanup(): void {
    killAllServes();
    // Binds of sandbox directories that leaked elsewhere (a defect the crash test looks for) go too.
    for (const m of mountTable()) {
      if (inside(m.root, this.root) && !inside(m.target, this.root) && m.fstype !== 'tmpfs') execFileSync('umount', ['-l', m.target], { stdio: 'ignore' });
    }
    umountAllUnder(this.root);
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** Decoy data outside every path hostvol may touch: a few files and directories with content. */
export function plantDecoys(dir: string): void {
  fs.mkdirSync(path.join(dir, 'etc', 'deep'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'etc', 'passwd'), 'root:x:0:0:decoy\n');
  fs.writeFileSync(path.join(dir, 'etc', 'deep', 'secret'), 'do not delete\n');
  fs.mkdirSync(path.join(dir, 'x'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'x', 'keep'), 'keep\n');
}

export type Snapshot = Map<string, string>;

/**
 * Every entry below `root` with its type, mode, owner, size, mtime and (for files) content hash;
 * directories in `exclude` are recorded but not entered, and their own metadata is not compared.
 */
export function snapshot(root: string, exclude: string[] = []): Snapshot {
  const out: Snapshot = new Map();
  const walk = (p: string) => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return;
    }
    if (exclude.some((e) => inside(p, e))) {
      out.set(p, 'excluded');
      return;
    }
    let extra = '';
    if (st.isSymbolicLink()) extra = `-> ${fs.readlinkSync(p)}`;
    else if (st.isFile()) extra = crypto.createHash('sha1').update(fs.readFileSync(p)).digest('hex');
    const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFile() ? 'f' : 'o';
    out.set(p, `${type} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${type === 'd' ? '' : st.size} ${st.mtimeMs} ${extra}`);
    if (st.isDirectory()) for (const name of fs.readdirSync(p)) walk(path.join(p, name));
  };
  walk(root);
  return out;
}

/** Human-readable differences between two snapshots (empty when nothing changed). */
export function diffSnapshots(before: Snapshot, after: Snapshot): string[] {
  const out: string[] = [];
  for (const [p, d] of before) {
    const a = after.get(p);
    if (a === undefined) out.push(`removed: ${p} (${d})`);
    else if (a !== d) out.push(`changed: ${p}: ${d} => ${a}`);
  }
  for (const [p, d] of after) if (!before.has(p)) out.push(`created: ${p} (${d})`);
  return out;
}
