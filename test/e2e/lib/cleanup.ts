// Last-resort cleanup used by the engine teardown and by the sweep of runs that died without one:
// cgroups under a run's --cgroup-parent, processes in a run's mount namespace, mounts under its BASE.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isAlive, mountNs, mountPoints, pidsInMountNs, readPid, run, signal, sleep } from './proc';

const CGROUP_ROOT = '/sys/fs/cgroup';

/** Every existing cgroup directory named `name` directly below a cgroup hierarchy root (v1 and v2). */
export function cgroupDirs(name: string): string[] {
  const dirs: string[] = [];
  const top = path.join(CGROUP_ROOT, name);
  if (fs.existsSync(top)) dirs.push(top);
  let controllers: string[] = [];
  try {
    controllers = fs.readdirSync(CGROUP_ROOT);
  } catch {
    return dirs;
  }
  for (const c of controllers) {
    const d = path.join(CGROUP_ROOT, c, name);
    if (d !== top && fs.existsSync(d)) dirs.push(d);
  }
  return dirs;
}

function walk(dir: string, out: string[]): void {
  out.push(dir);
  let ents: fs.Dirent[];
  try {
    ents = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of ents) if (e.isDirectory()) walk(path.join(dir, e.name), out);
}

/** Pids in any cgroup at or below the run's cgroup parent. */
export function cgroupPids(name: string): number[] {
  const pids = new Set<number>();
  for (const root of cgroupDirs(name)) {
    const all: string[] = [];
    walk(root, all);
    for (const d of all) {
      try {
        for (const l of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) {
          const n = Number(l);
          if (n > 0) pids.add(n);
        }
      } catch {
        /* vanished */
      }
    }
  }
  return [...pids];
}

/** SIGKILL everything in the run's cgroups (container processes), then rmdir them deepest first. */
export async function removeCgroups(name: string): Promise<string[]> {
  for (let i = 0; i < 50; i++) {
    const pids = cgroupPids(name).filter(isAlive);
    if (pids.length === 0) break;
    for (const p of pids) signal(p, 'SIGKILL');
    await sleep(50);
  }
  const left: string[] = [];
  for (const root of cgroupDirs(name)) {
    const all: string[] = [];
    walk(root, all);
    for (const d of all.sort((a, b) => b.length - a.length)) {
      let ok = false;
      for (let i = 0; i < 20 && !ok; i++) {
        try {
          fs.rmdirSync(d);
          ok = true;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') ok = true;
          else await sleep(50);
        }
      }
      if (!ok) left.push(d);
    }
  }
  return left;
}

/**
 * SIGKILL every process in mount namespace `ns` except `anchor`, then the anchor. `anchor` must be one of
 * the run's own processes and still in `ns`: while it lives the namespace cannot be freed, so its inode
 * number cannot meanwhile be handed to somebody else's namespace. Without a live anchor nothing is killed.
 */
export async function killMountNs(ns: string | undefined, anchors: (number | undefined)[]): Promise<number[]> {
  const anchor = anchors.find((p) => p && isAlive(p) && mountNs(p) === ns);
  if (!ns || !anchor) return [];
  const killed = new Set<number>();
  for (let i = 0; i < 100; i++) {
    const pids = pidsInMountNs(ns).filter((p) => p !== anchor && p !== process.pid);
    if (pids.length === 0) break;
    for (const p of pids) {
      killed.add(p);
      signal(p, 'SIGKILL');
    }
    await sleep(50);
  }
  signal(anchor, 'SIGKILL');
  for (let i = 0; i < 100 && isAlive(anchor); i++) await sleep(20);
  return [...killed];
}

/**
 * Unmount everything under `base` as seen by `pid` (a process in the run's namespace, or 'self' for the
 * host namespace), deepest first, falling back to a lazy unmount. Returns what was mounted.
 */
export async function unmountUnder(pid: number | 'self', base: string): Promise<string[]> {
  const found = mountPoints(pid, base);
  const sorted = [...new Set(found)].sort((a, b) => b.length - a.length);
  const enter = pid === 'self' ? [] : ['-t', String(pid), '-m', '--'];
  for (const m of sorted) {
    const cmd = pid === 'self' ? 'umount' : 'nsenter';
    const r = await run(cmd, [...enter, ...(pid === 'self' ? [] : ['umount']), m], {
      allowFail: true,
      timeoutMs: 20_000,
    });
    if (r.code !== 0) {
      await run(cmd, [...enter, ...(pid === 'self' ? [] : ['umount']), '-l', m], {
        allowFail: true,
        timeoutMs: 20_000,
      });
    }
  }
  return sorted;
}

/** Clean up runs whose jest process died without a teardown (their owner.pid is gone). */
export async function sweepStaleRuns(): Promise<string[]> {
  const swept: string[] = [];
  for (const ent of fs.readdirSync('/tmp')) {
    if (!ent.startsWith('hv-e2e-')) continue;
    const base = path.join('/tmp', ent);
    const owner = readPid(path.join(base, 'owner.pid'));
    if (owner && isAlive(owner)) continue;
    let ns: string | undefined;
    try {
      ns = fs.readFileSync(path.join(base, 'ns'), 'utf8').trim();
    } catch {
      /* namespace never came up */
    }
    // Only trust the recorded namespace while one of the run's own processes is still in it.
    const own = ['holder.pid', 'docker.pid', 'hostvol.pid'].map((f) => readPid(path.join(base, f)));
    await killMountNs(ns, own);
    await removeCgroups(ent);
    await unmountUnder('self', base);
    fs.rmSync(base, { recursive: true, force: true });
    swept.push(base);
  }
  return swept;
}
