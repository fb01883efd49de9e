// The tar and pax encodings by themselves: record lengths, times, numbers, checksums, member names.
import { emptyEntry } from '../../src/archive/entry';
import { ArchiveError, memberPath } from '../../src/archive/names';
import { formatTime, parseRecords, parseTime, record } from '../../src/archive/pax';
import { encodeEntry, memberName, sparseMap } from '../../src/archive/tar-encode';
import { BLOCK, TYPE, decodeHeader, encodeHeader } from '../../src/archive/tar-header';

describe('pax records', () => {
  test.each([1, 2, 3, 4, 5, 6, 90, 91, 92, 93, 994, 995, 996])('length prefix counts itself (value of %i bytes)', (n) => {
    const r = record('k', 'v'.repeat(n));
    const [len] = r.toString().split(' ');
    expect(Number(len)).toBe(r.length);
    expect(parseRecords(r).get('k')).toEqual(Buffer.from('v'.repeat(n)));
  });
  test('values are bytes: a non-UTF-8 path comes back byte for byte', () => {
    const name = Buffer.from([0x61, 0xff, 0x0a, 0x3d]);
    expect(parseRecords(Buffer.concat([record('hdrcharset', 'BINARY'), record('path', name)])).get('path')).toEqual(name);
  });
  test('a record longer than the data is malformed', () => {
    expect(() => parseRecords(Buffer.from('30 path=x\n'))).toThrow(/malformed pax record/);
  });
  test.each([
    [0n, '0'],
    [1_500_000_000_123_456_789n, '1500000000.123456789'],
    [1_000_000_000_500_000_000n, '1000000000.5'],
    [-1_500_000_000n, '-1.5'],
  ])('time %s ns is "%s" and back', (ns, text) => {
    expect(formatTime(ns)).toBe(text);
    expect(parseTime(Buffer.from(text))).toBe(ns);
  });
});

describe('ustar headers', () => {
  const h = { name: Buffer.from('./a'), mode: 0o4755, uid: 1, gid: 2, size: 12345, mtime: 1_600_000_000, type: TYPE.file, linkname: Buffer.alloc(0), devMajor: 0, devMinor: 0 };
  test('encode then decode gives the same fields', () => {
    const b = Buffer.alloc(BLOCK);
    encodeHeader(b, 0, h);
    expect(decodeHeader(b)).toEqual(h);
  });
  test('a changed byte fails the checksum', () => {
    const b = Buffer.alloc(BLOCK);
    encodeHeader(b, 0, h);
    b[0] ^= 1;
    expect(() => decodeHeader(b)).toThrow(/checksum mismatch/);
  });
  test("GNU's base-256 numbers are read (sizes beyond 8 GiB)", () => {
    const b = Buffer.alloc(BLOCK);
    encodeHeader(b, 0, h);
    b.fill(0, 124, 136);
    b[124] = 0x80;
    b.writeUIntBE(2 ** 40, 130, 6);
    b.fill(0x20, 148, 156);
    let sum = 0;
    for (const c of b) sum += c;
    b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    expect(decodeHeader(b).size).toBe(2 ** 40);
  });
});

describe('entries', () => {
  test('a directory is "./path/", the root "./"', () => {
    expect(memberName(emptyEntry(Buffer.from('d'), 'dir')).toString()).toBe('./d/');
    expect(memberName(emptyEntry(Buffer.alloc(0), 'dir')).toString()).toBe('./');
  });
  test('a short ASCII entry with whole-second time needs no pax header', () => {
    const e = { ...emptyEntry(Buffer.from('a'), 'file'), mtimeNs: 5_000_000_000n };
    expect(encodeEntry(e).length).toBe(BLOCK);
  });
  test('a non-UTF-8 name is marked hdrcharset=BINARY', () => {
    const e = emptyEntry(Buffer.from([0x61, 0xff]), 'file');
    expect(encodeEntry(e).toString('latin1')).toContain('hdrcharset=BINARY');
  });
  test('headers are made in one reused buffer, yet nothing of a longer header before shows in the next', () => {
    const long = { ...emptyEntry(Buffer.from('n'.repeat(99)), 'symlink'), link: Buffer.from('t'.repeat(99)), mtimeNs: 5_000_000_000n, uid: 4321 };
    const short = { ...emptyEntry(Buffer.from('a'), 'file'), mtimeNs: 5_000_000_000n };
    encodeEntry(long);
    const h = decodeHeader(encodeEntry(short));
    expect(h.name.toString()).toBe('./a');
    expect(h.linkname.length).toBe(0);
    expect(encodeEntry(short).subarray(500).equals(Buffer.alloc(12))).toBe(true); // ustar leaves the tail zero
    // entryHeader's bytes are the next call's scratch; encodeEntry's are the caller's own.
    const kept = encodeEntry(short);
    encodeEntry(long);
    expect(decodeHeader(kept).name.toString()).toBe('./a');
  });
  test('a sparse map ends at the real size (a zero-length segment when the file ends in a hole)', () => {
    const e = { ...emptyEntry(Buffer.from('s'), 'file'), sparse: { realSize: 100, segments: [[10, 5]] as [number, number][] } };
    expect(sparseMap(e).toString('latin1').replace(/\0+$/, '')).toBe('2\n10\n5\n100\n0\n');
    expect(sparseMap(e).length).toBe(BLOCK);
  });
});

describe('member names', () => {
  test.each([
    ['./a//b/', 'a/b'],
    ['./', ''],
    ['a/./b', 'a/b'],
  ])('%s is %s', (raw, want) => expect(memberPath(Buffer.from(raw)).toString()).toBe(want));
  test.each(['../a', 'a/../../b', '/etc/passwd', 'a\0b'])('%s is refused', (raw) => {
    expect(() => memberPath(Buffer.from(raw))).toThrow(ArchiveError);
  });
});
