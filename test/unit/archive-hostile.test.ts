// Hostile and broken archives: each is refused with an error that names the member, nothing is
// written outside the volume, and the volume is left exactly as it was (no partial import, no
// staging directory left beside it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { emptyEntry, type Entry, type Kind } from '../../src/archive/entry';
import { importArchive } from '../../src/archive/import';
import { TRAILER, encodeEntry } from '../../src/archive/tar-encode';
import { BLOCK, TYPE, encodeHeader, padding } from '../../src/archive/tar-header';
import { record } from '../../src/archive/pax';
import { ConflictError } from '../../src/errors';
import { stopLibc } from '../../src/host/libc';
import { listing, tempDir } from './archive-tree';

jest.setTimeout(30_000);

let work: string;
let outside: string;
beforeAll(() => {
  work = tempDir('hostile');
  outside = path.join(work, 'outside');
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'secret'), 'untouched');
});
afterAll(async () => {
  fs.rmSync(work, { recursive: true, force: true });
  await stopLibc();
});

type Member = Partial<Omit<Entry, 'path' | 'link'>> & { path: string | Buffer; kind: Kind; data?: string; link?: Buffer | string };

/** An archive of `members` as hostvol's own encoder writes them (names are not checked on the way in). */
function tar(...members: Member[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const e: Entry = { ...emptyEntry(Buffer.from(m.path), m.kind), ...m, path: Buffer.from(m.path), link: Buffer.from(m.link ?? '') } as Entry;
    const data = Buffer.from(m.data ?? '');
    e.size = data.length;
    // encodeEntry writes './' + path; a raw name (absolute, '..') must reach the reader as given.
    const bytes = encodeEntry({ ...e, path: Buffer.from('x'.repeat(101)) });
    parts.push(withName(bytes, e), data, Buffer.alloc(padding(data.length)));
  }
  return Buffer.concat([...parts, TRAILER]);
}

/** Re-encodes the member's headers with its raw name in a pax `path` record. */
function withName(_: Buffer, e: Entry): Buffer {
  const body = Buffer.concat([record('path', e.path), ...(e.kind === 'hardlink' || e.kind === 'symlink' ? [record('linkpath', e.link)] : [])]);
  const xh = Buffer.alloc(BLOCK);
  encodeHeader(xh, 0, { name: Buffer.from('PaxHeader'), mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, type: TYPE.pax, linkname: Buffer.alloc(0), devMajor: 0, devMinor: 0 });
  const h = Buffer.alloc(BLOCK);
  const type = { file: TYPE.file, dir: TYPE.dir, symlink: TYPE.symlink, hardlink: TYPE.hardlink, fifo: TYPE.fifo, char: TYPE.char, block: TYPE.block }[e.kind];
  encodeHeader(h, 0, { name: Buffer.from('placeholder'), mode: e.mode, uid: 0, gid: 0, size: e.size, mtime: 0, type, linkname: Buffer.alloc(0), devMajor: 0, devMinor: 0 });
  return Buffer.concat([xh, body, Buffer.alloc(padding(body.length)), h]);
}

let n = 0;
function volume(content?: Record<string, string>): string {
  const d = path.join(work, `vol${n++}`);
  fs.mkdirSync(d);
  for (const [k, v] of Object.entries(content ?? {})) fs.writeFileSync(path.join(d, k), v);
  return d;
}

/** Imports `bytes` into `dir` and expects it refused with `message`, leaving everything as it was. */
async function refused(bytes: Buffer, message: RegExp, dir = volume(), force = false): Promise<void> {
  const before = listing(dir);
  await expect(importArchive(dir, Readable.from([bytes]), { force })).rejects.toThrow(message);
  expect(listing(dir)).toEqual(before);
  expect(listing(work).filter((x) => x.includes('.hostvol-'))).toEqual([]);
  expect(listing(outside)).toEqual(['secret']);
  expect(fs.readFileSync(path.join(outside, 'secret'), 'utf8')).toBe('untouched');
  expect(listing(work).filter((x) => !x.startsWith('vol') && x !== 'outside')).toEqual([]);
}

describe('names that would leave the volume are refused, naming the member', () => {
  test('a ".." component', () => refused(tar({ path: '../evil', kind: 'file', data: 'x' }), /member "\.\.\/evil" has a '\.\.' component/));
  test('a ".." further in', () => refused(tar({ path: 'a/../../evil', kind: 'file', data: 'x' }), /member "a\/\.\.\/\.\.\/evil"/));
  test('an absolute name', () => refused(tar({ path: `${outside}/evil`, kind: 'file', data: 'x' }), /has an absolute name/));
  test('a member through a symlink the archive made', () =>
    refused(
      tar({ path: 'link', kind: 'symlink', link: outside }, { path: 'link/pwned', kind: 'file', data: 'x' }),
      /member "link\/pwned": its path goes through "link", which is a symbolic link/,
    ));
  test('a directory member through a symlink', () =>
    refused(tar({ path: 'l', kind: 'symlink', link: '..' }, { path: 'l/d', kind: 'dir' }), /member "l\/d": its path goes through "l"/));
  test('a hard link to a path outside', () => refused(tar({ path: 'h', kind: 'hardlink', link: '../outside/secret' }), /'\.\.' component/));
  test('a hard link to an absolute path', () => refused(tar({ path: 'h', kind: 'hardlink', link: `${outside}/secret` }), /absolute name/));
  test('a hard link to something the archive did not put there', () =>
    refused(tar({ path: 'h', kind: 'hardlink', link: 'not-in-archive' }), /member "h": it is a hard link to "not-in-archive", which is not a file this archive put earlier/));
});

test('a file member over a symlink replaces the link, never writes through it', async () => {
  const dir = volume();
  await importArchive(dir, Readable.from([tar({ path: 's', kind: 'symlink', link: path.join(outside, 'secret') }, { path: 's', kind: 'file', data: 'mine' })]));
  expect(fs.lstatSync(path.join(dir, 's')).isFile()).toBe(true);
  expect(fs.readFileSync(path.join(dir, 's'), 'utf8')).toBe('mine');
  expect(fs.readFileSync(path.join(outside, 'secret'), 'utf8')).toBe('untouched');
});

test('a hard link to a symlink the archive made links the symlink itself', async () => {
  const dir = volume();
  await importArchive(dir, Readable.from([tar({ path: 's', kind: 'symlink', link: path.join(outside, 'secret') }, { path: 'h', kind: 'hardlink', link: 's' })]));
  expect(fs.lstatSync(path.join(dir, 'h')).isSymbolicLink()).toBe(true);
  expect(fs.lstatSync(path.join(outside, 'secret')).nlink).toBe(1);
});

describe('malformed and oversized archives', () => {
  const header = (type: string, size: number) => {
    const h = Buffer.alloc(BLOCK);
    encodeHeader(h, 0, { name: Buffer.from('h'), mode: 0o644, uid: 0, gid: 0, size, mtime: 0, type, linkname: Buffer.alloc(0), devMajor: 0, devMinor: 0 });
    return h;
  };
  test('a huge pax header is refused before it is read', () => refused(Buffer.concat([header(TYPE.pax, 100 << 20), Buffer.alloc(BLOCK)]), /extended header of 104857600 bytes is larger than/));
  test('a huge GNU long name is refused', () => refused(Buffer.concat([header(TYPE.gnuLongName, 1 << 20), Buffer.alloc(BLOCK)]), /extended header of 1048576 bytes/));
  test('a malformed pax record', () => {
    const body = Buffer.from('99 path=x\n');
    return refused(Buffer.concat([header(TYPE.pax, body.length), body, Buffer.alloc(padding(body.length)), header(TYPE.file, 0), TRAILER]), /malformed pax record/);
  });
  test('not a tar archive at all', () => refused(Buffer.alloc(4096, 0x41), /checksum mismatch \(not a tar archive/));
  test('a stream cut inside a member', () => {
    const whole = tar({ path: 'a', kind: 'file', data: 'x'.repeat(5000) }, { path: 'b', kind: 'file', data: 'y' });
    return refused(whole.subarray(0, 3000), /truncated: it ends inside member "a"/);
  });
  test('a stream cut between members, without its end-of-archive block', () => {
    const whole = tar({ path: 'a', kind: 'file', data: 'x' });
    return refused(whole.subarray(0, whole.length - TRAILER.length), /truncated: it ends at byte/);
  });
  test('a corrupt gzip stream', () => refused(Buffer.concat([zlib.gzipSync(tar({ path: 'a', kind: 'file', data: 'x' })).subarray(0, 40)]), /unexpected end of file/));
  test('an unsupported member type', () => refused(Buffer.concat([header('Z', 0), TRAILER]), /type 'Z', which hostvol does not import/));
});

describe('an existing volume', () => {
  const good = () => tar({ path: 'new', kind: 'file', data: 'new content' });
  test('that is not empty is refused without --force, and left as it was', async () => {
    const dir = volume({ old: 'old content' });
    await expect(importArchive(dir, Readable.from([good()]), { what: 'volume "v"' })).rejects.toThrow(ConflictError);
    await expect(importArchive(dir, Readable.from([good()]), { what: 'volume "v"' })).rejects.toThrow(/volume "v" is not empty .*use --force/);
    expect(listing(dir)).toEqual(['old']);
  });
  test('with --force has its content replaced as a whole', async () => {
    const dir = volume({ old: 'old content' });
    await importArchive(dir, Readable.from([good()]), { force: true });
    expect(listing(dir)).toEqual(['new']);
    expect(listing(work).filter((x) => x.includes('.hostvol-'))).toEqual([]);
  });
  test('with --force and a bad archive keeps its old content', () =>
    refused(tar({ path: 'fine', kind: 'file', data: 'x' }, { path: '../evil', kind: 'file' }), /'\.\.' component/, volume({ old: 'old content' }), true));
  test('leaves no thread behind, whether the import is refused, fails or succeeds', async () => {
    // The extract worker starts before the volume is checked: a refusal must stop it too, or each
    // refused import would keep a thread in the daemon for good.
    const threads = () => fs.readdirSync('/proc/self/task').length;
    const settled = async (want: number) => {
      for (let i = 0; i < 100 && threads() !== want; i++) await new Promise((r) => setTimeout(r, 20));
      return threads();
    };
    await importArchive(volume(), Readable.from([good()])); // the host worker's thread stays; count after it
    const before = await settled(threads());
    await expect(importArchive(volume({ old: 'old content' }), Readable.from([good()]))).rejects.toThrow(ConflictError);
    expect(await settled(before)).toBe(before);
    await expect(importArchive(volume(), Readable.from([tar({ path: '../evil', kind: 'file' })]))).rejects.toThrow(/'\.\.' component/);
    expect(await settled(before)).toBe(before);
    await importArchive(volume(), Readable.from([good()]));
    expect(await settled(before)).toBe(before);
  });
  test('an aborted import leaves it as it was', async () => {
    const dir = volume();
    const ac = new AbortController();
    async function* slow() {
      yield tar({ path: 'a', kind: 'file', data: 'x' }).subarray(0, 1024);
      ac.abort();
      await new Promise((r) => setTimeout(r, 50));
      yield Buffer.alloc(BLOCK);
    }
    await expect(importArchive(dir, Readable.from(slow()), { signal: ac.signal })).rejects.toThrow(/cancelled/);
    expect(listing(dir)).toEqual([]);
    expect(listing(work).filter((x) => x.includes('.hostvol-'))).toEqual([]);
  });
});
