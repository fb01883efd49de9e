// An open directory, and single no-follow steps from it. Node has no openat(2), but a path through
// the magic link /proc/self/fd/<fd> is resolved by the kernel to exactly the directory that fd refers
// to, wherever it now is, and only the components after it are looked up by name. So
// `/proc/self/fd/<fd>/<name>` with O_NOFOLLOW is openat(fd, name, O_NOFOLLOW), and unlink, rmdir,
// mkdir, rename, lstat and the l*xattr calls on it act on `<name>` itself (they never follow a final
// symlink). No path is ever judged once and then followed again by name.
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { PathError } from '../errors';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants;

/** A PathError that also carries the errno name (ENOENT, ENOTDIR, EXDEV, …), so callers can branch on it. */
export class TreeError extends PathError {
  override name = 'TreeError';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** True when `err` says a path component does not exist. */
export function isNotFound(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ENOENT';
}

export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

const fstat = promisify(fs.fstat);
const fchmod = promisify(fs.fchmod);
const fchown = promisify(fs.fchown);
const fsync = promisify(fs.fsync);
const close = promisify(fs.close);
const open = promisify(fs.open);

/**
 * An open directory reached without following symlinks. It holds a plain descriptor, not a
 * FileHandle: the walks that open it may run on a host worker thread (tree-jobs.ts).
 */
export class Dir {
  private readonly prefix: Buffer;

  constructor(
    readonly fd: number,
    /** For messages only; never resolved again. */
    readonly path: string,
  ) {
    this.prefix = Buffer.from(`/proc/self/fd/${fd}`);
  }

  /** `/proc/self/fd/<fd>` or `/proc/self/fd/<fd>/<name>` as a Buffer (names are bytes). */
  at(name?: string | Buffer): Buffer {
    if (name === undefined) return this.prefix;
    return Buffer.concat([this.prefix, SLASH, checkName(name, this.path)]);
  }

  /**
   * `/proc/self/fd/<fd>/.`: the directory itself for calls that do not follow a final symlink
   * (lsetxattr on the bare magic link would act on the link in /proc, not on the directory).
   */
  self(): Buffer {
    return Buffer.concat([this.prefix, DOT]);
  }

  /** The path of entry `name` for messages. */
  child(name: string | Buffer): string {
    return `${this.path === '/' ? '' : this.path}/${shownName(name)}`;
  }

  stat(): Promise<fs.Stats> {
    return fstat(this.fd);
  }

  chmod(mode: number): Promise<void> {
    return fchmod(this.fd, mode);
  }

  chown(uid: number, gid: number): Promise<void> {
    return fchown(this.fd, uid, gid);
  }

  /** fsync: makes this directory's entries (and its own inode) survive a power cut. */
  sync(): Promise<void> {
    return fsync(this.fd);
  }

  close(): Promise<void> {
    return close(this.fd);
  }
}

const SLASH = Buffer.from('/');
const DOT = Buffer.from('/.');

/** A name of one entry: any bytes but '/' and NUL, and not '.' or '..' (which would leave the entry). */
function checkName(name: string | Buffer, where: string): Buffer {
  const b = typeof name === 'string' ? Buffer.from(name) : name;
  const s = b.toString('latin1');
  if (b.length === 0 || s === '.' || s === '..' || b.includes(0x2f) || b.includes(0)) {
    throw new TreeError(`"${shownName(b)}" is not a single name inside ${where}`, 'EINVAL');
  }
  return b;
}

/** A name for messages: UTF-8 shown as text, other bytes and control characters as \xNN escapes. */
export function shownName(name: string | Buffer): string {
  const b = typeof name === 'string' ? Buffer.from(name) : name;
  const text = b.toString('utf8');
  const valid = Buffer.from(text).equals(b);
  let out = '';
  if (valid) {
    for (const ch of text) out += ch < ' ' || ch === '\x7f' ? `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}` : ch;
  } else {
    for (const byte of b) out += byte < 0x20 || byte >= 0x7f ? `\\x${byte.toString(16).padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out.length > 200 ? `${out.slice(0, 200)}…` : out;
}

/** Opens a trusted absolute path as a directory (it is followed as given: it is the caller's root). */
export async function openRoot(root: string): Promise<Dir> {
  try {
    return new Dir(await open(root, O_RDONLY | O_DIRECTORY), root);
  } catch (err) {
    const code = errnoOf(err) ?? 'EIO';
    if (code === 'ENOENT') throw new TreeError(`${root} does not exist`, code);
    if (code === 'ENOTDIR') throw new TreeError(`${root} is not a directory`, code);
    throw new TreeError(`cannot open ${root} (${code})`, code);
  }
}

/**
 * openat(parent, name, O_NOFOLLOW|O_DIRECTORY). A symlink or anything not a directory is refused
 * with code ENOTDIR, a missing entry with ENOENT. A mount point is entered (the caller checks mounts).
 */
export async function openChild(parent: Dir, name: string | Buffer): Promise<Dir> {
  const p = parent.child(name);
  try {
    return new Dir(await open(parent.at(name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW), p);
  } catch (err) {
    const code = errnoOf(err) ?? 'EIO';
    if (code === 'ENOENT') throw new TreeError(`${p} does not exist`, 'ENOENT');
    // O_NOFOLLOW on a symlink gives ELOOP; O_DIRECTORY on anything else ENOTDIR.
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      const st = await fs.promises.lstat(parent.at(name)).catch(() => undefined);
      const what = st?.isSymbolicLink() ? 'a symbolic link' : 'not a directory';
      throw new TreeError(`${p} is not a plain directory: it is ${what} (swapped for a symlink?); refusing to follow it`, 'ENOTDIR');
    }
    throw new TreeError(`cannot open ${p} (${code})`, code);
  }
}

/** The mount a file descriptor lies on, from the `mnt_id:` line the kernel keeps for it. */
export async function mountIdOf(dir: Dir): Promise<number> {
  const text = await fs.promises.readFile(`/proc/self/fdinfo/${dir.fd}`, 'latin1');
  const m = /^mnt_id:\s*(\d+)/m.exec(text);
  if (!m) throw new Error(`no mnt_id in /proc/self/fdinfo/${dir.fd} (kernel without mnt_id in fdinfo?)`);
  return Number(m[1]);
}

/** Where a walk started: entries on another mount or file system are someone else's. */
export interface Origin {
  path: string;
  mnt: number;
  dev: number;
}

export async function originOf(dir: Dir): Promise<Origin> {
  return { path: dir.path, mnt: await mountIdOf(dir), dev: (await dir.stat()).dev };
}

/**
 * Whether `dir` lies on the walk's own mount. Bind mounts of the same file system share st_dev, so
 * the mount id decides; st_dev is checked too, for file systems stacked without a new mount id.
 */
export async function onOrigin(dir: Dir, origin: Origin): Promise<boolean> {
  return (await mountIdOf(dir)) === origin.mnt && (await dir.stat()).dev === origin.dev;
}
