// Walks over a directory tree held open by file descriptor: deleting, labelling and measuring it
// without ever following a symlink or entering another mount, whatever is renamed or swapped while
// the walk runs. Each directory is entered with openChild (O_NOFOLLOW|O_DIRECTORY on a path through
// the parent's fd), so what is walked is exactly what was opened. Subdirectories are handled one at a
// time, so a walk holds one fd per level of depth and never a fan-out of them.
import * as fs from 'node:fs';
import { libc } from './libc';
import { promisify } from 'node:util';
import { JobFailure, runJob } from './host-worker';
import { Dir, TreeError, errnoOf, onOrigin, openChild, originOf, shownName, type Origin } from './tree-dir';

/** Entries a directory lists, names as raw bytes (names on Linux need not be UTF-8). */
async function list(dir: Dir): Promise<fs.Dirent[]> {
  return (await fs.promises.readdir(dir.at(), { encoding: 'buffer', withFileTypes: true })) as unknown as fs.Dirent[];
}

const nameOf = (e: fs.Dirent): Buffer => e.name as unknown as Buffer;

/** A directory, or of a type the file system did not report (DT_UNKNOWN): opening it will tell. */
const maybeDir = (e: fs.Dirent): boolean =>
  e.isDirectory() || !(e.isFile() || e.isSymbolicLink() || e.isFIFO() || e.isSocket() || e.isBlockDevice() || e.isCharacterDevice());

/** Runs `fn` on every item with at most `width` calls in flight. */
async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
}

/**
 * Opens child directory `name` for a walk from `origin`: null when it is not a directory (any more),
 * or is gone. With `refuseMounts` a mount inside is an error, else it is skipped (null).
 */
async function enter(parent: Dir, name: Buffer, origin: Origin, refuseMounts: boolean): Promise<Dir | null> {
  let child: Dir;
  try {
    child = await openChild(parent, name);
  } catch (err) {
    if (errnoOf(err) === 'ENOTDIR' || errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
  let same = false;
  try {
    same = await onOrigin(child, origin);
  } finally {
    if (!same) await child.close();
  }
  if (same) return child;
  if (!refuseMounts) return null;
  throw new TreeError(`${child.path} is mounted inside ${origin.path}; unmount it first`, 'EXDEV');
}

// An adversary can keep putting entries back while a delete runs; after this many rounds, give up loudly.
const ROUNDS = 20;

/** Deletes everything inside `dir` (not dir itself); never follows symlinks or enters another mount. */
export async function emptyTree(dir: Dir): Promise<void> {
  await emptyFrom(dir, await originOf(dir));
}

async function emptyFrom(dir: Dir, origin: Origin): Promise<void> {
  for (let round = 0; ; round++) {
    const entries = await list(dir);
    if (entries.length === 0) return;
    if (round === ROUNDS) throw new TreeError(`${dir.path} kept gaining entries while it was being emptied; stop whatever writes there and retry`, 'ENOTEMPTY');
    // Sequential: each subdirectory holds an fd while it is emptied, and this keeps that to one per level.
    for (const e of entries) await removeFrom(dir, nameOf(e), maybeDir(e), origin);
  }
}

/**
 * Removes entry `name` of `parent`, whatever it turns out to be. The type readdir gave is only a
 * hint: unlink never removes a directory (EISDIR) and never follows a symlink, and a name that stops
 * being a directory before it is opened is refused by O_NOFOLLOW|O_DIRECTORY and then unlinked.
 */
export async function removeFrom(parent: Dir, name: Buffer, looksLikeDir: boolean, origin: Origin): Promise<void> {
  let isDir = looksLikeDir;
  for (let round = 0; round < ROUNDS; round++) {
    if (!isDir) {
      try {
        await fs.promises.unlink(parent.at(name));
        return;
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') return;
        if (errnoOf(err) !== 'EISDIR') throw failed('delete', parent.child(name), err);
        isDir = true;
      }
    }
    const child = await enter(parent, name, origin, true);
    if (!child) {
      isDir = false; // gone, or no longer a directory: unlink whatever is there now
      continue;
    }
    try {
      await emptyFrom(child, origin);
    } finally {
      await child.close();
    }
    try {
      await fs.promises.rmdir(parent.at(name));
      return;
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT') return;
      if (code === 'ENOTDIR') isDir = false; // swapped for a symlink or file after it was emptied
      else if (code !== 'ENOTEMPTY') throw failed('delete', parent.child(name), err);
    }
  }
  throw new TreeError(`${parent.child(name)} kept changing while it was being deleted; stop whatever writes there and retry`, 'EAGAIN');
}

function failed(what: string, p: string, err: unknown): Error {
  if (err instanceof TreeError) return err;
  const code = errnoOf(err) ?? 'EIO';
  return new TreeError(`cannot ${what} ${p} (${code})`, code);
}

// xattr calls go one at a time through the libc worker; a few in flight hide the round trips.
const XATTR_WIDTH = 16;

/** Writes xattr `name` = `value` on `dir` and every entry below (symlinks themselves; not into other mounts). */
export async function setXattrTree(dir: Dir, name: string, value: string | Buffer): Promise<void> {
  const v = typeof value === 'string' ? Buffer.from(value) : value;
  await setXattr(dir.self(), dir.path, name, v, true);
  await labelFrom(dir, await originOf(dir), name, v);
}

async function setXattr(at: Buffer, shown: string, name: string, value: Buffer, mustExist: boolean): Promise<void> {
  try {
    await libc('lsetxattr', shown, at, name, value, 0);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' && !mustExist) return; // deleted while the walk ran: nothing left to label
    if (code === 'EOPNOTSUPP' || code === 'ENOTSUP') {
      // One errno with two names on Linux; which one libc.ts reports depends on its table's order.
      throw new TreeError(
        `cannot set extended attribute ${name} on ${shown}: its file system does not support it (EOPNOTSUPP); ` +
          'put the volume on a file system with extended attributes, or do not ask for labels',
        'EOPNOTSUPP',
      );
    }
    throw failed(`set extended attribute ${name} on`, shown, err);
  }
}

async function labelFrom(dir: Dir, origin: Origin, name: string, value: Buffer): Promise<void> {
  const entries = await list(dir);
  const others = entries.filter((e) => !maybeDir(e));
  // Symlinks, files, fifos, sockets, devices: lsetxattr acts on the entry itself, never its target.
  await pool(others, XATTR_WIDTH, (e) => setXattr(dir.at(nameOf(e)), dir.child(nameOf(e)), name, value, false));
  for (const e of entries.filter(maybeDir)) {
    const child = await enter(dir, nameOf(e), origin, false);
    if (!child) {
      // Not a directory any more (or on another mount, or gone): label the entry itself, not followed.
      if (await onSameMountAsEntry(dir, nameOf(e), origin)) await setXattr(dir.at(nameOf(e)), dir.child(nameOf(e)), name, value, false);
      continue;
    }
    try {
      // Through the child's own fd: exactly the directory that was opened and checked.
      await setXattr(child.self(), child.path, name, value, false);
      await labelFrom(child, origin, name, value);
    } finally {
      await child.close();
    }
  }
}

/** For an entry that could not be entered: true unless it is a directory (a mount point) or on another device. */
async function onSameMountAsEntry(dir: Dir, name: Buffer, origin: Origin): Promise<boolean> {
  const st = await fs.promises.lstat(dir.at(name)).catch(() => undefined);
  return !!st && !st.isDirectory() && st.dev === origin.dev;
}

interface MeasuredDir {
  bytes: number;
  apparentBytes: number;
  inodes: number;
  /** [ino, bytes, apparent] of entries with more than one link, counted once across the tree. */
  linked: number[][];
  /** Subdirectories (or entries of unknown type) to measure next, by name. */
  dirs: Uint8Array[];
  /** The measured directory, open while its subdirectories are measured; -1 when closed already. */
  fd: number;
}

const closeFd = promisify(fs.close);

/**
 * Disk usage (st_blocks × 512), apparent size and inodes of the tree, each inode counted once; not
 * into other mounts. One host-worker job a directory (tree-jobs.ts measureDir: synchronous lstats
 * there), depth first, so the walk holds one fd per level of depth.
 */
export async function measureTree(dir: Dir): Promise<{ bytes: number; apparentBytes: number; inodes: number }> {
  const origin = await originOf(dir);
  const total = { bytes: 0, apparentBytes: 0, inodes: 0 };
  const seen = new Set<number>(); // inodes with more than one link, so each is counted once
  const walk = async (parent: number, name: Uint8Array | null, shown: string): Promise<void> => {
    let r: MeasuredDir;
    try {
      r = await runJob<MeasuredDir>('measureDir', parent, name, origin.mnt, origin.dev);
    } catch (err) {
      if (err instanceof JobFailure) throw new TreeError(`cannot measure ${shown} (${err.code})`, err.code);
      throw err;
    }
    total.bytes += r.bytes;
    total.apparentBytes += r.apparentBytes;
    total.inodes += r.inodes;
    for (const [ino, bytes, apparent] of r.linked) {
      if (seen.has(ino)) continue;
      seen.add(ino);
      total.bytes += bytes;
      total.apparentBytes += apparent;
      total.inodes += 1;
    }
    const fd = name === null ? parent : r.fd;
    try {
      for (const sub of r.dirs) await walk(fd, sub, `${shown === '/' ? '' : shown}/${shownName(Buffer.from(sub))}`);
    } finally {
      if (name !== null && r.fd >= 0) await closeFd(r.fd);
    }
  };
  await walk(dir.fd, null, dir.path);
  return total;
}
