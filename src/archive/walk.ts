// The synchronous walk an archive worker makes over a volume's tree: each directory and file is
// opened from its parent's fd by openat(2) with O_NOFOLLOW (a directory also O_DIRECTORY), so nothing
// swapped in while it runs can lead it outside the tree; other mounts are not entered. What Node
// only offers by path (readdir, lstat, readlink) goes through /proc/self/fd/<fd>/<name>, which
// resolves the same way but walks procfs on every call: a regular file, the common case, is
// opened with one lookup. Synchronous because it runs on a worker thread, where a blocking call costs
// one system call rather than a thread-pool round trip per file: that is what keeps pace with GNU tar.
import * as fs from 'node:fs';
import { emptyEntry, majorOf, minorOf, type Entry } from './entry';
import { shown } from './names';
import { SEEK_DATA, SEEK_HOLE, SysError, closeFd, getXattr, listXattrs, openAt, seek, type What } from './sys';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NOATIME, O_NONBLOCK } = fs.constants;
const SLASH = Buffer.from('/');

/** `/proc/self/fd/<fd>/<name>`: openat(fd, name) for Node's path-based calls. */
export function at(fd: number, name?: Buffer): Buffer {
  const prefix = Buffer.from(`/proc/self/fd/${fd}`);
  return name ? Buffer.concat([prefix, SLASH, name]) : prefix;
}

export const join = (dir: Buffer, name: Buffer): Buffer => (dir.length ? Buffer.concat([dir, SLASH, name]) : Buffer.from(name));

/** What the walk hands over: every entry in order (a directory before what it holds), with the
 * open fd of a regular file's content (closed by the walk after `visit` returns), else -1. */
export type Visit = (e: Entry, fd: number) => void;

export interface WalkStats {
  entries: number;
  bytes: number;
  warnings: string[];
}

function mountId(fd: number): number {
  const m = /^mnt_id:\s*(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
  return m ? Number(m[1]) : -1;
}

function xattrsOf(fd: number, p: Buffer | null, what: What): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  for (const name of listXattrs(fd, p, what)) {
    const v = getXattr(fd, p, name, what);
    if (v) out.push([name, v]);
  }
  return out;
}

function fill(e: Entry, st: fs.BigIntStats): void {
  e.mode = Number(st.mode & 0o7777n);
  e.uid = Number(st.uid);
  e.gid = Number(st.gid);
  e.mtimeNs = st.mtimeNs;
}

/** Data segments of a file that has fewer blocks than its size suggests; null when it is not sparse. */
export function sparseSegments(fd: number, size: number, what: string): [number, number][] | null {
  const segs: [number, number][] = [];
  for (let pos = 0; pos < size; ) {
    const data = seek(fd, pos, SEEK_DATA, what);
    if (data < 0 || data >= size) break;
    const hole = Math.min(seek(fd, data, SEEK_HOLE, what), size);
    segs.push([data, hole - data]);
    pos = hole;
  }
  if (segs.length === 1 && segs[0][0] === 0 && segs[0][1] === size) return null;
  return segs;
}

/**
 * Walks the tree at `root` (followed as given: the caller's verified directory), calling `visit` for
 * the root ('' path) and every entry below. Sockets and other mounts are skipped with a warning.
 * With `sparse`, files with holes carry their data map.
 */
export function walkTree(root: string | Buffer, visit: Visit, opts: { sparse: boolean }): WalkStats {
  const stats: WalkStats = { entries: 0, bytes: 0, warnings: [] };
  const rootFd = fs.openSync(root, O_RDONLY | O_DIRECTORY);
  const links = new Map<string, Buffer>();
  try {
    const st = fs.fstatSync(rootFd, { bigint: true });
    const origin = { dev: st.dev, mnt: mountId(rootFd) };
    const e = emptyEntry(Buffer.alloc(0), 'dir');
    fill(e, st);
    e.xattrs = xattrsOf(rootFd, null, String(root));
    visit(e, -1);
    stats.entries++;
    walkDir(rootFd, Buffer.alloc(0), origin, visit, opts, links, stats);
  } finally {
    fs.closeSync(rootFd);
  }
  return stats;
}

/** openat of `name` in `dirFd` (close it with closeFd); null when it is gone or was swapped for another kind. */
function openEntry(dirFd: number, name: Buffer, flags: number, swapped: string[], what: What): number | null {
  try {
    return openAt(dirFd, name, flags, 0, what);
  } catch (err) {
    if (err instanceof SysError && swapped.includes(err.code)) return null;
    throw err;
  }
}

const FILE_FLAGS = O_RDONLY | O_NOFOLLOW | O_NOATIME | O_NONBLOCK; // O_NONBLOCK: a fifo swapped in does not hang the walk
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;

/**
 * Opens what should be a regular file and fstat's the descriptor: the caller checks that what it got
 * is still the file it meant (the entry may have been swapped since). Null when it is gone.
 */
function openFile(dirFd: number, name: Buffer, what: What): { fd: number; fst: fs.BigIntStats } | null {
  const fd = openEntry(dirFd, name, FILE_FLAGS, ['ENOENT', 'ELOOP'], what);
  if (fd === null) return null;
  try {
    return { fd, fst: fs.fstatSync(fd, { bigint: true }) };
  } catch (err) {
    closeFd(fd);
    throw err;
  }
}

// The directory's entry types (d_type) say which names are regular files and directories, so those
// are opened straight away and fstat'ed (two calls a file, as GNU tar's openat+fstat after its
// fstatat, rather than lstat+open+fstat: the lstat through /proc/self/fd was a fifth of the walk's
// time on a tree of small files). What was opened is checked again by its fstat, so an entry swapped
// between readdir and open is handled as what it now is. Other kinds, and file systems that report
// no type (DT_UNKNOWN), take the lstat path.
function walkDir(dirFd: number, rel: Buffer, origin: { dev: bigint; mnt: number }, visit: Visit, opts: { sparse: boolean }, links: Map<string, Buffer>, stats: WalkStats): void {
  const dirents = fs.readdirSync(at(dirFd), { encoding: 'buffer', withFileTypes: true }) as fs.Dirent<Buffer>[];
  dirents.sort((a, b) => Buffer.compare(a.name, b.name));
  for (const d of dirents) {
    const name = d.name;
    const path = join(rel, name);
    const e = emptyEntry(path, 'file');
    // Not there as readdir said (gone, or swapped for another kind since): looked at again below,
    // by lstat, as what it is now; a symlink swapped in is exported as the symlink it is.
    if (d.isDirectory()) {
      const fd = openEntry(dirFd, name, DIR_FLAGS, ['ENOENT', 'ENOTDIR', 'ELOOP'], () => shown(path));
      if (fd !== null) {
        walkSubdir(fd, e, origin, visit, opts, links, stats);
        continue;
      }
    } else if (d.isFile()) {
      const opened = openFile(dirFd, name, () => shown(path));
      if (opened?.fst.isFile()) {
        visitFile(opened.fd, opened.fst, e, visit, opts, links, stats);
        continue;
      }
      if (opened) closeFd(opened.fd);
    }
    walkOther(dirFd, name, e, origin, visit, opts, links, stats);
  }
}

/** A directory opened from its parent (openEntry): exported and entered, unless it is another mount. Closes `fd`. */
function walkSubdir(fd: number, e: Entry, origin: { dev: bigint; mnt: number }, visit: Visit, opts: { sparse: boolean }, links: Map<string, Buffer>, stats: WalkStats): void {
  try {
    // Other mounts are told by mount id, on directories: st_dev is no test for files, as
    // overlayfs reports a non-directory's st_dev from the layer it lives in.
    if (mountId(fd) !== origin.mnt) {
      stats.warnings.push(`${shown(e.path)} is another mount; not exported`);
      return;
    }
    e.kind = 'dir';
    fill(e, fs.fstatSync(fd, { bigint: true }));
    e.xattrs = xattrsOf(fd, null, () => shown(e.path));
    visit(e, -1);
    stats.entries++;
    walkDir(fd, e.path, origin, visit, opts, links, stats);
  } finally {
    closeFd(fd);
  }
}

/**
 * A second name of an inode already exported goes out as a hard link to the first name (visited
 * here, true); the first name of a multiply-linked inode is remembered for those that follow.
 */
function exportedBefore(st: fs.BigIntStats, e: Entry, visit: Visit, links: Map<string, Buffer>, stats: WalkStats): boolean {
  if (st.nlink <= 1n) return false;
  const key = `${st.dev}:${st.ino}`;
  const first = links.get(key);
  if (!first) {
    links.set(key, e.path);
    return false;
  }
  e.kind = 'hardlink';
  e.link = first;
  visit(e, -1);
  stats.entries++;
  return true;
}

/** A regular file opened and fstat'ed (`fst`): a hard link to a file already exported, or its content. Closes `fd`. */
function visitFile(fd: number, fst: fs.BigIntStats, e: Entry, visit: Visit, opts: { sparse: boolean }, links: Map<string, Buffer>, stats: WalkStats): void {
  try {
    fill(e, fst);
    if (exportedBefore(fst, e, visit, links, stats)) return;
    e.size = Number(fst.size);
    e.xattrs = xattrsOf(fd, null, () => shown(e.path));
    if (opts.sparse && fst.blocks * 512n < fst.size) {
      const segs = sparseSegments(fd, e.size, shown(e.path));
      if (segs) e.sparse = { realSize: e.size, segments: segs };
    }
    visit(e, fd);
    stats.entries++;
    stats.bytes += e.size;
  } finally {
    closeFd(fd);
  }
}

/** An entry whose kind readdir did not give (or that changed kind): lstat first, then as what it is. */
function walkOther(dirFd: number, name: Buffer, e: Entry, origin: { dev: bigint; mnt: number }, visit: Visit, opts: { sparse: boolean }, links: Map<string, Buffer>, stats: WalkStats): void {
  const p = at(dirFd, name);
  let st: fs.BigIntStats;
  try {
    st = fs.lstatSync(p, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // deleted while the walk ran
    throw err;
  }
  fill(e, st);
  if (st.isDirectory()) {
    const fd = openEntry(dirFd, name, DIR_FLAGS, ['ENOENT', 'ENOTDIR', 'ELOOP'], () => shown(e.path));
    if (fd !== null) walkSubdir(fd, e, origin, visit, opts, links, stats);
    return;
  }
  if (st.isFile()) {
    const opened = openFile(dirFd, name, () => shown(e.path));
    if (opened === null) return;
    if (opened.fst.ino !== st.ino || !opened.fst.isFile()) {
      closeFd(opened.fd); // replaced between lstat and open: the next walk will see it
      return;
    }
    visitFile(opened.fd, opened.fst, e, visit, opts, links, stats);
    return;
  }
  if (exportedBefore(st, e, visit, links, stats)) return;
  if (st.isSymbolicLink()) {
    e.kind = 'symlink';
    try {
      e.link = fs.readlinkSync(p, { encoding: 'buffer' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EINVAL') return;
      throw err;
    }
  } else if (st.isFIFO()) e.kind = 'fifo';
  else if (st.isCharacterDevice() || st.isBlockDevice()) {
    e.kind = st.isCharacterDevice() ? 'char' : 'block';
    e.devMajor = majorOf(st.rdev);
    e.devMinor = minorOf(st.rdev);
  } else {
    stats.warnings.push(`${shown(e.path)} is a socket; not exported (GNU tar skips them too)`);
    return;
  }
  e.xattrs = xattrsOf(-1, p, shown(e.path));
  visit(e, -1);
  stats.entries++;
}
