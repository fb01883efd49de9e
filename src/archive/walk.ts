// The synchronous walk an archive worker makes over a volume's tree: each directory is entered from
// its parent's fd with O_NOFOLLOW|O_DIRECTORY (the /proc/self/fd/<fd>/<name> form of openat, as in
// src/host/tree-dir.ts), so nothing swapped in while it runs can lead it outside the tree; other
// mounts are not entered. Synchronous because it runs on a worker thread, where a blocking call costs
// one system call rather than a thread-pool round trip per file: that is what keeps pace with GNU tar.
import * as fs from 'node:fs';
import { emptyEntry, majorOf, minorOf, type Entry } from './entry';
import { shown } from './names';
import { SEEK_DATA, SEEK_HOLE, getXattr, listXattrs, seek } from './sys';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NOATIME } = fs.constants;
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

function xattrsOf(fd: number, p: Buffer | null, what: string): [string, Buffer][] {
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

function walkDir(dirFd: number, rel: Buffer, origin: { dev: bigint; mnt: number }, visit: Visit, opts: { sparse: boolean }, links: Map<string, Buffer>, stats: WalkStats): void {
  const names = (fs.readdirSync(at(dirFd), { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare);
  for (const name of names) {
    const p = at(dirFd, name);
    const path = join(rel, name);
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(p, { bigint: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // deleted while the walk ran
      throw err;
    }
    // Other mounts are told by mount id, on directories (below): st_dev is no test for files, as
    // overlayfs reports a non-directory's st_dev from the layer it lives in.
    const e = emptyEntry(path, 'file');
    fill(e, st);
    if (!st.isDirectory() && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = links.get(key);
      if (first) {
        e.kind = 'hardlink';
        e.link = first;
        visit(e, -1);
        stats.entries++;
        continue;
      }
      links.set(key, path);
    }
    if (st.isDirectory()) {
      let fd: number;
      try {
        fd = fs.openSync(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') continue; // swapped while the walk ran
        throw err;
      }
      try {
        if (mountId(fd) !== origin.mnt) {
          stats.warnings.push(`${shown(path)} is another mount; not exported`);
          continue;
        }
        e.kind = 'dir';
        fill(e, fs.fstatSync(fd, { bigint: true }));
        e.xattrs = xattrsOf(fd, null, shown(path));
        visit(e, -1);
        stats.entries++;
        walkDir(fd, path, origin, visit, opts, links, stats);
      } finally {
        fs.closeSync(fd);
      }
      continue;
    }
    if (st.isFile()) {
      let fd: number;
      try {
        fd = fs.openSync(p, O_RDONLY | O_NOFOLLOW | O_NOATIME);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ELOOP') continue;
        throw err;
      }
      try {
        const fst = fs.fstatSync(fd, { bigint: true });
        if (fst.ino !== st.ino) continue; // replaced between lstat and open: the next walk will see it
        fill(e, fst);
        e.size = Number(fst.size);
        e.xattrs = xattrsOf(fd, null, shown(path));
        if (opts.sparse && fst.blocks * 512n < fst.size) {
          const segs = sparseSegments(fd, e.size, shown(path));
          if (segs) e.sparse = { realSize: e.size, segments: segs };
        }
        visit(e, fd);
        stats.entries++;
        stats.bytes += e.size;
      } finally {
        fs.closeSync(fd);
      }
      continue;
    }
    if (st.isSymbolicLink()) {
      e.kind = 'symlink';
      try {
        e.link = fs.readlinkSync(p, { encoding: 'buffer' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EINVAL') continue;
        throw err;
      }
    } else if (st.isFIFO()) e.kind = 'fifo';
    else if (st.isCharacterDevice() || st.isBlockDevice()) {
      e.kind = st.isCharacterDevice() ? 'char' : 'block';
      e.devMajor = majorOf(st.rdev);
      e.devMinor = minorOf(st.rdev);
    } else {
      stats.warnings.push(`${shown(path)} is a socket; not exported (GNU tar skips them too)`);
      continue;
    }
    e.xattrs = xattrsOf(-1, p, shown(path));
    visit(e, -1);
    stats.entries++;
  }
}
