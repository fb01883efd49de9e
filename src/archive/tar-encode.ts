// An Entry as the header bytes that precede its data in a pax archive. Everything ustar cannot hold
// (long or non-UTF-8 names, nanoseconds, big ids, xattrs, sparse maps) goes in a pax extended header
// of its own, in records GNU tar and bsdtar read: SCHILY.xattr.* for xattrs, GNU.sparse 1.0 for holes.
import { isUtf8 } from 'node:buffer';
import type { Entry } from './entry';
import { BLOCK, TYPE, encodeHeader, padding } from './tar-header';
import { formatTime, record } from './pax';

const TYPES: Record<Entry['kind'], string> = {
  file: TYPE.file,
  dir: TYPE.dir,
  symlink: TYPE.symlink,
  hardlink: TYPE.hardlink,
  fifo: TYPE.fifo,
  char: TYPE.char,
  block: TYPE.block,
};

const DOT = Buffer.from('./');
const SLASH = Buffer.from('/');
const EMPTY = Buffer.alloc(0);

/** The member name GNU tar gives `tar -C dir -cf - .`: './' prefixed, directories with a trailing '/'. */
export function memberName(e: Entry): Buffer {
  if (e.path.length === 0) return DOT;
  return Buffer.concat(e.kind === 'dir' ? [DOT, e.path, SLASH] : [DOT, e.path]);
}

const isAscii = (b: Buffer): boolean => {
  for (const c of b) if (c >= 0x80 || c === 0) return false;
  return true;
};

/** Bytes of data the entry's member carries after its header(s) (a sparse file: map + data segments). */
export function dataSize(e: Entry): number {
  if (e.kind !== 'file') return 0;
  if (!e.sparse) return e.size;
  return sparseMap(e).length + e.sparse.segments.reduce((n, [, len]) => n + len, 0);
}

/** GNU.sparse 1.0's map, at the start of the member's data: count, then offset/length lines, padded. */
export function sparseMap(e: Entry): Buffer {
  const segs = [...e.sparse!.segments];
  const last = segs[segs.length - 1];
  // The map's last segment ends at the real size (a zero-length one when the file ends in a hole).
  if (!last || last[0] + last[1] < e.sparse!.realSize) segs.push([e.sparse!.realSize, 0]);
  const text = `${segs.length}\n${segs.map(([o, l]) => `${o}\n${l}\n`).join('')}`;
  return Buffer.concat([Buffer.from(text), Buffer.alloc(padding(text.length))]);
}

// Header bytes are made in one buffer reused for every entry: a fresh zeroed block per header (two
// with a pax header, then a concat) was a tenth of an export's CPU time on a tree of small files
// (node --cpu-prof of bench/archive-child.ts: Buffer allocation and the garbage it left).
let scratch = Buffer.allocUnsafe(16 * 1024);

/**
 * The header block(s) of `e` (a pax extended header when needed, then the ustar header, then a sparse
 * file's map) in a buffer the next call reuses: copy them out before calling again.
 */
export function entryHeader(e: Entry): Buffer {
  const name = memberName(e);
  // A hard link names its target as that target's member name ('./a'), as GNU tar writes it.
  if (e.kind === 'hardlink') e = { ...e, link: Buffer.concat([DOT, e.link]) };
  const recs: Buffer[] = [];
  let headerName = name;
  const binary = !(isAscii(name) || isUtf8(name)) || (e.link.length > 0 && !(isAscii(e.link) || isUtf8(e.link)));
  if (binary) recs.push(record('hdrcharset', 'BINARY'));
  if (e.sparse) {
    recs.push(record('GNU.sparse.major', '1'), record('GNU.sparse.minor', '0'));
    recs.push(record('GNU.sparse.name', name), record('GNU.sparse.realsize', String(e.sparse.realSize)));
    const slash = e.path.lastIndexOf(0x2f);
    headerName = Buffer.concat([Buffer.from('./GNUSparseFile.0/'), e.path.subarray(slash + 1)]);
  } else if (name.length > 100 || !isAscii(name)) {
    recs.push(record('path', name));
  }
  if (e.link.length > 100 || !isAscii(e.link)) recs.push(record('linkpath', e.link));
  const size = dataSize(e);
  if (size >= 8 ** 11) recs.push(record('size', String(size)));
  if (e.uid >= 8 ** 7) recs.push(record('uid', String(e.uid)));
  if (e.gid >= 8 ** 7) recs.push(record('gid', String(e.gid)));
  const sec = e.mtimeNs / 1_000_000_000n;
  if (e.mtimeNs % 1_000_000_000n !== 0n || e.mtimeNs < 0n || sec >= 8n ** 11n) recs.push(record('mtime', formatTime(e.mtimeNs)));
  for (const [k, v] of e.xattrs) recs.push(record(`SCHILY.xattr.${Buffer.from(k, 'latin1').toString('utf8')}`, v));

  let body = 0;
  for (const r of recs) body += r.length;
  const map = e.sparse ? sparseMap(e) : null;
  const total = (recs.length ? BLOCK + body + padding(body) : 0) + BLOCK + (map ? map.length : 0);
  if (scratch.length < total) scratch = Buffer.allocUnsafe(total);
  const out = scratch.subarray(0, total).fill(0);
  let at = 0;
  if (recs.length) {
    const xname = Buffer.concat([Buffer.from('./PaxHeaders/'), headerName.subarray(2, 2 + 80)]);
    encodeHeader(out, 0, { name: xname, mode: 0o644, uid: 0, gid: 0, size: body, mtime: 0, type: TYPE.pax, linkname: EMPTY, devMajor: 0, devMinor: 0 });
    at = BLOCK;
    for (const r of recs) at += r.copy(out, at);
    at += padding(body);
  }
  encodeHeader(out, at, {
    name: headerName,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size,
    mtime: sec >= 0n && sec < 8n ** 11n ? Number(sec) : 0,
    type: TYPES[e.kind],
    linkname: e.link,
    devMajor: e.devMajor,
    devMinor: e.devMinor,
  });
  if (map) map.copy(out, at + BLOCK);
  return out;
}

/** entryHeader's bytes in a buffer of their own. */
export function encodeEntry(e: Entry): Buffer {
  return Buffer.from(entryHeader(e));
}

/** The end of an archive: two zero blocks. */
export const TRAILER = Buffer.alloc(2 * BLOCK);
