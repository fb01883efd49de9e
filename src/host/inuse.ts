// Whether any container still has a directory mounted, asked of the kernel: used only to decide
// whether mount leases left by a dockerd that died can be dropped.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readMounts, type MountEntry } from './mountinfo';
import { isInside } from './paths';

const read = (file: string): string | undefined => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
};
const nsOf = (pid: string): string | undefined => {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
};

/** A process's mount table, or none when it exited meanwhile. */
function mountsOf(pid: string): MountEntry[] {
  try {
    return readMounts(Number(pid));
  } catch {
    return [];
  }
}

/** Containers are only visible when we share dockerd's PID namespace (a host service, not a managed plugin). */
function seesDockerd(pids: string[]): boolean {
  return pids.some((pid) => read(`/proc/${pid}/comm`)?.trim() === 'dockerd');
}

/**
 * True when a mount namespace other than ours has `dir` (or a part of it) mounted, as a container
 * does with its volumes; false when none has; undefined when this process cannot tell.
 */
export function mountedElsewhere(dir: string): boolean | undefined {
  const pids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  if (!seesDockerd(pids)) return undefined;
  // Find dir's file system and its path inside it: that is what a bind mount of dir shows as root.
  const own = readMounts();
  const holder = own.filter((m) => isInside(dir, m.mountPoint)).sort((a, b) => b.mountPoint.length - a.mountPoint.length)[0];
  if (!holder) return undefined;
  const root = path.join(holder.root, path.relative(holder.mountPoint, dir));
  const seen = new Set([nsOf('self')]);
  for (const pid of pids) {
    const ns = nsOf(pid);
    if (!ns || seen.has(ns)) continue;
    seen.add(ns);
    const lines = mountsOf(pid);
    if (lines.some((m) => m.dev === holder.dev && isInside(m.root, root))) return true;
  }
  return false;
}
