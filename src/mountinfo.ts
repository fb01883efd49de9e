// The kernel's list of mount points, for the mounter and for deletes that must not cross into a mount.
import * as fs from 'node:fs';

/** Mount points listed in /proc/self/mountinfo (field 5, with the kernel's octal escapes undone). */
export function mountPoints(): string[] {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field) out.push(field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}
