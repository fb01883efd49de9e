// A push parser for tar streams (pax, ustar, GNU): bytes in as they arrive, members out to a sink.
// It holds at most one header's worth of bytes, so a hostile archive costs bounded memory: extended
// headers and long names above their limits, malformed numbers and records, old GNU sparse members
// and a stream that ends before its end-of-archive block are all refused with an ArchiveError.
import { emptyEntry, type Entry, type Kind } from './entry';
import { ArchiveError, memberPath, shown } from './names';
import { parseNumber, parseRecords, parseTime, type Records } from './pax';
import { BLOCK, TYPE, decodeHeader, isZeroBlock, padding, type Header } from './tar-header';

/** Where decoded members go. `data` gives a member's content in order, with its offset in the file. */
export interface MemberSink {
  begin(e: Entry): void;
  data(chunk: Buffer, position: number): void;
  end(e: Entry): void;
}

export const MAX_EXTENDED_HEADER = 1 << 20;
export const MAX_LONG_NAME = 64 * 1024;
export const MAX_SPARSE_SEGMENTS = 1 << 20;

const KINDS: Record<string, Kind> = {
  [TYPE.file]: 'file',
  [TYPE.contiguous]: 'file',
  [TYPE.hardlink]: 'hardlink',
  [TYPE.symlink]: 'symlink',
  [TYPE.char]: 'char',
  [TYPE.block]: 'block',
  [TYPE.dir]: 'dir',
  [TYPE.fifo]: 'fifo',
};

type State = 'header' | 'meta' | 'sparsemap' | 'data' | 'skip' | 'end';

export class TarDecoder {
  private state: State = 'header';
  private readonly block = Buffer.alloc(BLOCK);
  private have = 0; // bytes of `block` filled
  private offset = 0; // archive bytes consumed, for messages
  private pax: Records = new Map();
  private longName: Buffer | null = null;
  private longLink: Buffer | null = null;
  private meta: { type: string; buf: Buffer; have: number } | null = null;
  private entry: Entry | null = null;
  private left = 0; // bytes of the member's data still to come (then its padding)
  private pad = 0;
  private segments: [number, number][] = [];
  private seg = 0;
  private segLeft = 0;
  private position = 0;
  private mapText: Buffer[] = [];

  constructor(private readonly sink: MemberSink) {}

  /** Feeds the next bytes; throws an ArchiveError at the first thing it refuses. */
  push(buf: Buffer): void {
    let at = 0;
    while (at < buf.length) {
      if (this.state === 'end') return; // what follows the end-of-archive block is padding
      if (this.state === 'data') {
        const n = Math.min(this.segLeft, buf.length - at);
        if (n > 0) this.sink.data(buf.subarray(at, at + n), this.position);
        this.position += n;
        this.segLeft -= n;
        this.left -= n;
        at += n;
        this.offset += n;
        if (this.segLeft === 0) this.nextSegment();
        continue;
      }
      if (this.state === 'skip') {
        const n = Math.min(this.left + this.pad, buf.length - at);
        const fromData = Math.min(n, this.left);
        this.left -= fromData;
        this.pad -= n - fromData;
        at += n;
        this.offset += n;
        if (this.left === 0 && this.pad === 0) this.memberDone();
        continue;
      }
      // header, meta and sparsemap read whole blocks.
      const n = Math.min(BLOCK - this.have, buf.length - at);
      buf.copy(this.block, this.have, at, at + n);
      this.have += n;
      at += n;
      this.offset += n;
      if (this.have < BLOCK) return;
      this.have = 0;
      if (this.state === 'header') this.onHeader();
      else if (this.state === 'meta') this.onMetaBlock();
      else this.onMapBlock();
    }
  }

  /** The input ended: anything but a completed archive is a truncated one. */
  finish(): void {
    if (this.state === 'end') return;
    const where = this.entry ? `inside member "${shown(this.entry.path)}"` : `at byte ${this.offset}`;
    throw new ArchiveError(`the archive is truncated: it ends ${where} without its end-of-archive block; nothing was imported`);
  }

  private fail(what: string): never {
    throw new ArchiveError(`${what} (at archive byte ${this.offset - BLOCK}); nothing was imported`);
  }

  private onHeader(): void {
    if (isZeroBlock(this.block)) {
      this.state = 'end';
      return;
    }
    let h: Header;
    try {
      h = decodeHeader(this.block);
    } catch (err) {
      this.fail((err as Error).message);
    }
    if (h.type === TYPE.pax || h.type === TYPE.paxGlobal || h.type === TYPE.gnuLongName || h.type === TYPE.gnuLongLink) {
      const limit = h.type === TYPE.gnuLongName || h.type === TYPE.gnuLongLink ? MAX_LONG_NAME : MAX_EXTENDED_HEADER;
      if (h.size > limit) this.fail(`an extended header of ${h.size} bytes is larger than the ${limit} hostvol accepts`);
      this.meta = { type: h.type, buf: Buffer.alloc(h.size), have: 0 };
      this.left = h.size;
      this.state = h.size ? 'meta' : 'header';
      if (!h.size) this.metaDone();
      return;
    }
    this.startMember(h);
  }

  private onMetaBlock(): void {
    const m = this.meta!;
    const n = Math.min(BLOCK, m.buf.length - m.have);
    this.block.copy(m.buf, m.have, 0, n);
    m.have += n;
    if (m.have === m.buf.length) this.metaDone();
  }

  private metaDone(): void {
    const m = this.meta!;
    this.meta = null;
    this.state = 'header';
    try {
      if (m.type === TYPE.pax) parseRecords(m.buf, this.pax);
      else if (m.type === TYPE.paxGlobal) parseRecords(m.buf); // checked, not applied: nothing hostvol keeps is global
      else {
        const nul = m.buf.indexOf(0);
        const name = nul < 0 ? m.buf : m.buf.subarray(0, nul);
        if (m.type === TYPE.gnuLongName) this.longName = name;
        else this.longLink = name;
      }
    } catch (err) {
      this.fail((err as Error).message);
    }
  }

  private startMember(h: Header): void {
    const pax = this.pax;
    const raw = pax.get('GNU.sparse.name') ?? pax.get('path') ?? this.longName ?? h.name;
    const kind = KINDS[h.type];
    if (!kind) {
      if (h.type === TYPE.gnuSparse) this.fail(`member "${shown(raw)}" is an old GNU sparse member; recreate the archive with --format=posix`);
      this.fail(`member "${shown(raw)}" has type '${h.type}', which hostvol does not import`);
    }
    const e = emptyEntry(memberPath(raw), kind);
    e.mode = h.mode & 0o7777;
    try {
      e.uid = pax.has('uid') ? parseNumber('uid', pax.get('uid')!) : h.uid;
      e.gid = pax.has('gid') ? parseNumber('gid', pax.get('gid')!) : h.gid;
      e.mtimeNs = pax.has('mtime') ? parseTime(pax.get('mtime')!) : BigInt(h.mtime) * 1_000_000_000n;
      const stored = pax.has('size') ? parseNumber('size', pax.get('size')!) : h.size;
      const link = pax.get('linkpath') ?? this.longLink ?? h.linkname;
      e.link = kind === 'hardlink' ? memberPath(link) : Buffer.from(link);
      e.devMajor = h.devMajor;
      e.devMinor = h.devMinor;
      for (const [k, v] of pax) {
        if (k.startsWith('SCHILY.xattr.')) e.xattrs.push([Buffer.from(k.slice(13)).toString('latin1'), Buffer.from(v)]);
      }
      if (kind === 'hardlink' && e.link.length === 0) this.fail(`hard link "${shown(e.path)}" has no target`);
      this.left = stored;
      this.pad = padding(stored);
      e.size = kind === 'file' ? stored : 0;
      if (kind === 'file' && pax.has('GNU.sparse.major')) {
        const version = `${pax.get('GNU.sparse.major')}.${pax.get('GNU.sparse.minor') ?? ''}`;
        if (version !== '1.0') this.fail(`member "${shown(e.path)}" uses GNU sparse format ${version}; recreate it with --sparse-version=1.0`);
        e.size = parseNumber('GNU.sparse.realsize', pax.get('GNU.sparse.realsize') ?? Buffer.from('x'));
        e.sparse = { realSize: e.size, segments: [] };
      }
    } catch (err) {
      if (err instanceof ArchiveError) throw err;
      this.fail(`member "${shown(raw)}": ${(err as Error).message}`);
    }
    this.pax = new Map();
    this.longName = this.longLink = null;
    this.entry = e;
    if (e.sparse) {
      this.mapText = [];
      this.state = this.left > 0 ? 'sparsemap' : this.fail(`sparse member "${shown(e.path)}" has no map`);
      return;
    }
    this.sink.begin(e);
    if (kind === 'file') {
      this.segments = [[0, this.left]];
      this.seg = -1;
      this.nextSegment();
    } else this.skipRest();
  }

  private onMapBlock(): void {
    const e = this.entry!;
    this.mapText.push(Buffer.from(this.block));
    this.left -= BLOCK;
    const lines = Buffer.concat(this.mapText).toString('latin1').split('\n');
    const count = Number(lines[0]);
    if (lines.length < 2 || !/^\d{1,8}$/.test(lines[0]) || count > MAX_SPARSE_SEGMENTS) this.fail(`sparse member "${shown(e.path)}" has a malformed map`);
    if (lines.length - 1 <= 2 * count) {
      if (this.left <= 0 || this.mapText.length * BLOCK > 64 * MAX_SPARSE_SEGMENTS) this.fail(`sparse member "${shown(e.path)}" has a truncated map`);
      return; // the map goes on in the next block
    }
    const segs: [number, number][] = [];
    let end = 0;
    for (let i = 0; i < count; i++) {
      const [o, l] = [lines[1 + 2 * i], lines[2 + 2 * i]];
      if (!/^\d{1,16}$/.test(o) || !/^\d{1,16}$/.test(l)) this.fail(`sparse member "${shown(e.path)}" has a malformed map`);
      const off = Number(o);
      const len = Number(l);
      if (off < end || off + len > e.size) this.fail(`sparse member "${shown(e.path)}" has a map out of order or past its size`);
      end = off + len;
      if (len > 0) segs.push([off, len]);
    }
    const data = segs.reduce((n, [, l]) => n + l, 0);
    if (data !== this.left) this.fail(`sparse member "${shown(e.path)}" carries ${this.left} bytes but its map says ${data}`);
    e.sparse!.segments = segs;
    this.segments = segs;
    this.seg = -1;
    this.sink.begin(e);
    this.nextSegment();
  }

  private nextSegment(): void {
    this.seg++;
    if (this.seg < this.segments.length) {
      [this.position, this.segLeft] = this.segments[this.seg];
      this.state = 'data';
      if (this.segLeft === 0) this.nextSegment();
      return;
    }
    this.skipRest();
  }

  private skipRest(): void {
    if (this.left === 0 && this.pad === 0) this.memberDone();
    else this.state = 'skip';
  }

  private memberDone(): void {
    const e = this.entry!;
    this.entry = null;
    this.state = 'header';
    this.sink.end(e);
  }
}
