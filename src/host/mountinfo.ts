// The kernel's mount table (/proc/PID/mountinfo), parsed once here for the mounter, for deletes and
// relabels that must not cross into a mount, and for telling whether a container still uses a volume.
import * as fs from 'node:fs';

export interface MountEntry {
  /** The mount's ID (field 1); unique among the mounts currently attached. */
  id: number;
  /** The ID of the mount this one sits on (field 2). */
  parentId: number;
  /** major:minor of the file system (field 3). */
  dev: string;
  /** The path inside that file system which is mounted here (field 4). */
  root: string;
  /** Where it is mounted, as seen from the reading process's root (field 5). */
  mountPoint: string;
  /** Per-mount options such as ro, rw, relatime (field 6). */
  options: string[];
  /** Optional fields: propagation (`shared:N`, `master:N`, `unbindable`), up to the `-` separator. */
  propagation: string[];
}

/**
 * Turns one field back into the path it names. The kernel writes names as raw bytes and escapes
 * only space, tab, newline and backslash as \ooo, so the text is taken byte for byte (latin1), the
 * escapes are replaced by their bytes, and the bytes are read as UTF-8 the way Node reads a path.
 */
function unescape(field: string): string {
  const bytes = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

/**
 * Parses the text of a mountinfo file. A Buffer is read byte for byte; a string is taken as the
 * UTF-8 text of the file. Lines that are not mount entries (the empty last one) are skipped.
 */
export function parseMountInfo(text: Buffer | string): MountEntry[] {
  const raw = (Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8')).toString('latin1');
  const out: MountEntry[] = [];
  for (const line of raw.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 7 || sep < 0) continue;
    out.push({
      id: Number(f[0]),
      parentId: Number(f[1]),
      dev: f[2],
      root: unescape(f[3]),
      mountPoint: unescape(f[4]),
      options: f[5].split(','),
      propagation: f.slice(6, sep),
    });
  }
  return out;
}

/**
 * The mount table of a process, in the kernel's order (later entries are mounted on top). Read
 * without blocking the event loop: a host with thousands of containers has a large table.
 */
export async function readMounts(pid: number | 'self' = 'self'): Promise<MountEntry[]> {
  return parseMountInfo(await fs.promises.readFile(`/proc/${pid}/mountinfo`));
}

/**
 * The same, read synchronously. Still used by the callers that have not moved to the async read
 * (paths.ts removeTree, labels.ts relabelling, test helpers); new code should use readMounts.
 */
export function readMountsSync(pid: number | 'self' = 'self'): MountEntry[] {
  return parseMountInfo(fs.readFileSync(`/proc/${pid}/mountinfo`));
}

/** Mount points of this process (synchronous; see readMountsSync for who still needs that). */
export function mountPoints(): string[] {
  return readMountsSync().map((m) => m.mountPoint);
}
