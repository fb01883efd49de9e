// Attacker processes for the race group: each owns some parent directories inside the allowed roots
// and the volume directories below them, and as fast as it can swaps them for symlinks to a decoy
// tree outside, renames them away and back, and puts them back. They are separate processes (not
// timers in the test's event loop) so the swaps really interleave with hostvol's system calls.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

export interface Family {
  /** A parent directory inside an allowed root (its own parent is never touched). */
  parent: string;
  /** Where the parent's symlink points: a decoy directory holding decoys named like the children. */
  parentDecoy: string;
  /** Volume directories directly below `parent`, each with the decoy its symlink points to. */
  children: { dir: string; decoy: string }[];
}

export interface AttackStats {
  swaps: number;
  renames: number;
  restores: number;
  /** Steps the file system refused (hostvol removed or re-made the directory meanwhile). */
  refused: number;
  /** Paths still left as symlinks after the final restore (must be 0). */
  leftSwapped: number;
}

/**
 * The attacker's whole program, run with `node -e` in its own process (so it must not use anything
 * from this module's scope). Every step lstat()s first and never operates through a symlink: an
 * attacker that renamed a decoy's entries would make the outside change by itself.
 */
function attack(cfg: { families: Family[]; stopFile: string; seed: number; noSwap: boolean }): void {
  const fs = require('node:fs') as typeof import('node:fs');
  let s = cfg.seed >>> 0;
  const rand = (n: number) => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s % n;
  };
  const stats = { swaps: 0, renames: 0, restores: 0, refused: 0, leftSwapped: 0 };
  const isDir = (p: string) => fs.lstatSync(p, { throwIfNoEntry: false })?.isDirectory() === true;
  const isLink = (p: string) => fs.lstatSync(p, { throwIfNoEntry: false })?.isSymbolicLink() === true;
  const away = (p: string) => `${p}.away-${process.pid}`;
  const tryDo = (fn: () => void): boolean => {
    try {
      fn();
      return true;
    } catch {
      stats.refused++;
      return false;
    }
  };
  /** Swap: the directory renamed aside, a symlink to the decoy in its place. */
  const swap = (p: string, decoy: string) => {
    if (!isDir(p) || isLink(away(p))) return;
    if (tryDo(() => fs.renameSync(p, away(p))) && tryDo(() => fs.symlinkSync(decoy, p))) stats.swaps++;
  };
  /** Put back: our symlink removed, the directory renamed back (fails if hostvol re-made it). */
  const restore = (p: string) => {
    if (isLink(p)) tryDo(() => fs.unlinkSync(p));
    if (fs.existsSync(away(p)) && !fs.existsSync(p) && tryDo(() => fs.renameSync(away(p), p))) stats.restores++;
  };
  /** Rename back and forth: the path is missing for a moment, then the same directory again. */
  const dance = (p: string) => {
    if (isDir(p) && tryDo(() => fs.renameSync(p, `${p}.dance`))) {
      stats.renames++;
      tryDo(() => fs.renameSync(`${p}.dance`, p));
    }
  };
  const step = () => {
    const f = cfg.families[rand(cfg.families.length)];
    const swapped = isLink(f.parent) || !isDir(f.parent);
    const r = rand(10);
    if (swapped) return restore(f.parent);
    if (r < 2) return cfg.noSwap ? dance(f.parent) : swap(f.parent, f.parentDecoy);
    if (r < 3) return dance(f.parent);
    // Children only while the parent is a real directory: otherwise their paths lead into the decoy.
    const c = f.children[rand(f.children.length)];
    if (isLink(c.dir) || !isDir(c.dir)) return restore(c.dir);
    if (r < 8 && !cfg.noSwap) return swap(c.dir, c.decoy);
    return dance(c.dir);
  };
  for (let i = 0; ; i++) {
    step();
    if (i % 256 === 0 && fs.existsSync(cfg.stopFile)) break;
  }
  for (const f of cfg.families) {
    restore(f.parent);
    if (!isDir(f.parent)) continue;
    for (const c of f.children) restore(c.dir);
  }
  for (const f of cfg.families) for (const p of [f.parent, ...f.children.map((c) => c.dir)]) if (isLink(p)) stats.leftSwapped++;
  process.stdout.write(JSON.stringify(stats));
}

export class Attackers {
  private readonly procs: { child: ChildProcess; out: Promise<string> }[] = [];

  /** One process per group of families; `noSwap` keeps only the renames (to show the swaps matter). */
  constructor(groups: Family[][], readonly stopFile: string, seed: number, noSwap = false) {
    fs.rmSync(stopFile, { force: true });
    for (const [i, families] of groups.entries()) {
      const cfg = { families, stopFile, seed: seed + i * 7919, noSwap };
      const child = spawn(process.execPath, ['-e', `(${attack.toString()})(${JSON.stringify(cfg)})`], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      this.procs.push({ child, out: new Promise((resolve) => child.once('exit', () => resolve(out))) });
    }
  }

  get pids(): number[] {
    return this.procs.map((p) => p.child.pid!);
  }

  /** SIGSTOPs every attacker and waits until the kernel reports each stopped, so nothing moves meanwhile. */
  async freeze(): Promise<void> {
    for (const pid of this.pids) process.kill(pid, 'SIGSTOP');
    for (const pid of this.pids) {
      while (!/^\d+ \(.*\) [Tt] /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))) await new Promise((r) => setImmediate(r));
    }
  }

  thaw(): void {
    for (const pid of this.pids) process.kill(pid, 'SIGCONT');
  }

  /** Tells every attacker to stop, restore what it swapped and report; sums their figures. */
  async stop(): Promise<AttackStats> {
    fs.writeFileSync(this.stopFile, 'stop\n');
    this.thaw();
    const outs = await Promise.all(this.procs.map((p) => p.out));
    const sum: AttackStats = { swaps: 0, renames: 0, restores: 0, refused: 0, leftSwapped: 0 };
    for (const o of outs) {
      const s = JSON.parse(o || '{}') as Partial<AttackStats>;
      for (const k of Object.keys(sum) as (keyof AttackStats)[]) sum[k] += s[k] ?? 0;
    }
    return sum;
  }

  /** Last resort for afterAll when a test failed before stop(). */
  kill(): void {
    for (const p of this.procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  }
}
