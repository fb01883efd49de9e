// The 512-byte ustar header block (POSIX.1-1988), as written by hostvol and as read from hostvol,
// GNU tar (its default `gnu` format differs in magic and in base-256 numbers) and bsdtar.
export const BLOCK = 512;

/** Type flags: the ustar ones, pax extended headers ('x', 'g'), GNU long names ('L', 'K'). */
export const TYPE = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
  contiguous: '7',
  pax: 'x',
  paxGlobal: 'g',
  gnuLongName: 'L',
  gnuLongLink: 'K',
  gnuSparse: 'S',
  gnuVolume: 'V',
} as const;

export interface Header {
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: string;
  linkname: Buffer;
  devMajor: number;
  devMinor: number;
}

/** A NUL-terminated field's bytes (a full field has no NUL). */
function bytes(b: Buffer, at: number, len: number): Buffer {
  const f = b.subarray(at, at + len);
  const nul = f.indexOf(0);
  return nul < 0 ? f : f.subarray(0, nul);
}

/** An octal field, or GNU's base-256 (high bit of the first byte set) for values too big for octal. */
function number(b: Buffer, at: number, len: number, field: string): number {
  if (b[at] & 0x80) {
    if (b[at] === 0xff) throw new Error(`negative ${field} in tar header`);
    let n = b[at] & 0x7f;
    for (let i = 1; i < len; i++) n = n * 256 + b[at + i];
    if (!Number.isSafeInteger(n)) throw new Error(`${field} too large in tar header`);
    return n;
  }
  const s = b.toString('latin1', at, at + len).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new Error(`malformed ${field} "${s}" in tar header`);
  return parseInt(s, 8);
}

function checksumOf(b: Buffer): { unsigned: number; signed: number } {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i];
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return { unsigned, signed };
}

export function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

/** Decodes a header block; a bad checksum means this is not a tar stream (or a corrupt one). */
export function decodeHeader(b: Buffer): Header {
  const field = b.toString('latin1', 148, 156).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  const stored = /^[0-7]{1,7}$/.test(field) ? parseInt(field, 8) : -1;
  const sum = checksumOf(b);
  if (stored !== sum.unsigned && stored !== sum.signed) throw new Error('tar header checksum mismatch (not a tar archive, or a corrupt one)');
  const ustar = b.toString('latin1', 257, 263) === 'ustar\0';
  let name = bytes(b, 0, 100);
  const prefix = ustar ? bytes(b, 345, 155) : Buffer.alloc(0);
  if (prefix.length) name = Buffer.concat([prefix, Buffer.from('/'), name]);
  return {
    name,
    mode: number(b, 100, 8, 'mode'),
    uid: number(b, 108, 8, 'uid'),
    gid: number(b, 116, 8, 'gid'),
    size: number(b, 124, 12, 'size'),
    mtime: number(b, 136, 12, 'mtime'),
    type: b[156] === 0 ? TYPE.file : String.fromCharCode(b[156]),
    linkname: bytes(b, 157, 100),
    devMajor: number(b, 329, 8, 'devmajor'),
    devMinor: number(b, 337, 8, 'devminor'),
  };
}

function putOctal(b: Buffer, at: number, len: number, n: number): void {
  // Values that do not fit are carried by a pax record; the field then holds what fits (0).
  const s = n >= 0 && n < 8 ** (len - 1) ? n.toString(8).padStart(len - 1, '0') : '0'.repeat(len - 1);
  b.write(s, at, len - 1, 'latin1');
}

/** Writes the header into `b` at `at` (a zeroed block); names longer than their field are cut (pax carries them). */
export function encodeHeader(b: Buffer, at: number, h: Header): void {
  const blk = b.subarray(at, at + BLOCK);
  h.name.copy(blk, 0, 0, Math.min(100, h.name.length));
  putOctal(blk, 100, 8, h.mode);
  putOctal(blk, 108, 8, h.uid);
  putOctal(blk, 116, 8, h.gid);
  putOctal(blk, 124, 12, h.size);
  putOctal(blk, 136, 12, h.mtime);
  blk.write(h.type, 156, 1, 'latin1');
  h.linkname.copy(blk, 157, 0, Math.min(100, h.linkname.length));
  blk.write('ustar\x0000', 257, 8, 'latin1');
  putOctal(blk, 329, 8, h.devMajor);
  putOctal(blk, 337, 8, h.devMinor);
  const sum = checksumOf(blk).unsigned;
  blk.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
}

export const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;
