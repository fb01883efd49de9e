// The kernel's list of mount points, for the mounter and for deletes that must not cross into a mount.
import * as fs from 'node:fs';

/** Mount points listed in /proc/self/mountinfo (field 5, with the kernel's octal escapes undone). */
export function mountPoints(): string[] {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field) out.push(unescape(field));
  }
  return out;
}

/** Undoes the kernel's octal escapes (\\040 for a space, …). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Whether the mount at `target` is read-only (per-mount options, field 6 of mountinfo). */
export function isReadOnlyMount(target: string): boolean {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  let ro = false;
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    // The last entry for a path is the one on top, the one a process sees.
    if (unescape(fields[4] ?? '') === target) ro = fields[5].split(',').includes('ro');
  }
  return ro;
}
