// The kernel's mount table (/proc/PID/mountinfo), parsed once here for the mounter, for deletes and
// relabels that must not cross into a mount, and for telling whether a container still uses a volume.
import * as fs from 'node:fs';

export interface MountEntry {
  /** major:minor of the file system (field 3). */
  dev: string;
  /** The path inside that file system which is mounted here (field 4). */
  root: string;
  mountPoint: string;
  /** Per-mount options such as ro, rw, relatime (field 6). */
  options: string[];
}

/** Undoes the kernel's octal escapes (\040 for a space, …). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The mount table of a process, in the kernel's order (later entries are mounted on top). */
export function readMounts(pid: number | 'self' = 'self'): MountEntry[] {
  const text = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length > 5) out.push({ dev: f[2], root: unescape(f[3]), mountPoint: unescape(f[4]), options: f[5].split(',') });
  }
  return out;
}

/** Mount points of this process. */
export function mountPoints(): string[] {
  return readMounts().map((m) => m.mountPoint);
}

/** Whether the mount at `target` is read-only; the last entry for a path is the one on top. */
export function isReadOnlyMount(target: string): boolean {
  const top = readMounts().filter((m) => m.mountPoint === target).pop();
  return top?.options.includes('ro') ?? false;
}
