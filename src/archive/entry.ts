// One member of a tree as hostvol archives it: what export reads off the disk, what a tar header
// carries, and what import and clone make. Names are bytes (Linux names need not be UTF-8).

export type Kind = 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo' | 'char' | 'block';

/** Where a sparse file holds data: [offset, length] pairs in order, and its full size. */
export interface SparseMap {
  realSize: number;
  segments: [number, number][];
}

export interface Entry {
  /** Relative to the tree's root, no leading './' or '/'; empty for the root itself. */
  path: Buffer;
  kind: Kind;
  /** Permission bits with setuid, setgid and sticky (0o7777); never the file type. */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time in nanoseconds since the epoch. */
  mtimeNs: bigint;
  /** Bytes of content (for a sparse file: its full size; the data is in `sparse`). */
  size: number;
  /** Symlink target, or the path of the member a hard link links to. */
  link: Buffer;
  devMajor: number;
  devMinor: number;
  /** Extended attributes, names as latin1 strings of their bytes. */
  xattrs: [string, Buffer][];
  sparse?: SparseMap;
}

export function emptyEntry(path: Buffer, kind: Kind): Entry {
  return { path, kind, mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n, size: 0, link: Buffer.alloc(0), devMajor: 0, devMinor: 0, xattrs: [] };
}

/** The device number (dev_t) from major and minor as glibc's makedev packs them. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

export function majorOf(dev: bigint): number {
  return Number(((dev >> 32n) & 0xfffff000n) | ((dev >> 8n) & 0xfffn));
}

export function minorOf(dev: bigint): number {
  return Number(((dev >> 12n) & 0xffffff00n) | (dev & 0xffn));
}
