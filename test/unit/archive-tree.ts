// Test support for the archive engine: a tree holding every kind of entry an archive must carry, and
// a snapshot of a tree, entry by entry, to compare two trees with (names as bytes, hard links as
// groups, contents by hash, xattrs, owners, modes, nanosecond mtimes, devices, sparseness).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { libc } from '../../src/host/libc';

export function tempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `hv-${tag}-`));
}

const B = (s: string) => Buffer.from(s);
const at = (root: string, rel: Buffer) => Buffer.concat([B(root + '/'), rel]);

/** Long names: a path of 6 × 60-byte directories (> 255 bytes in all) and a 200-byte file name. */
export const DEEP = Array.from({ length: 6 }, (_, i) => `${i}`.repeat(60)).join('/');
export const LONG = 'L'.repeat(200);
export const NOT_UTF8 = Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x2e, 0x74, 0x78, 0x74]);

/** Fills `root` with every kind of entry (see the README of issue #12's round-trip test). */
export async function makeEveryKind(root: string): Promise<void> {
  const p = (rel: string) => path.join(root, rel);
  fs.writeFileSync(p('regular'), 'hello, volume\n');
  fs.chmodSync(p('regular'), 0o4755);
  await libc('lsetxattr', 'test', p('regular'), 'user.note', B('kept'), 0);
  fs.writeFileSync(p('empty'), '');
  // Sparse: data at 4 MiB and 9 MiB of a 16 MiB file that ends in a hole; one wholly a hole.
  const fd = fs.openSync(p('sparse'), 'w');
  fs.writeSync(fd, Buffer.alloc(8192, 7), 0, 8192, 4 << 20);
  fs.writeSync(fd, Buffer.alloc(100, 9), 0, 100, 9 << 20);
  fs.ftruncateSync(fd, 16 << 20);
  fs.closeSync(fd);
  fs.writeFileSync(p('hole'), '');
  fs.truncateSync(p('hole'), 1 << 20);
  fs.mkdirSync(p('dir/sub'), { recursive: true });
  fs.linkSync(p('regular'), p('hardlink'));
  fs.linkSync(p('regular'), p('dir/sub/hardlink2'));
  fs.symlinkSync('regular', p('symlink-inside'));
  fs.symlinkSync('/etc/passwd', p('symlink-outside'));
  fs.symlinkSync('../../nowhere', p('dir/dangling'));
  await libc('lsetxattr', 'test', p('symlink-inside'), 'trusted.link', B('on the link itself'), 0);
  execFileSync('mkfifo', [p('fifo')]);
  execFileSync('mknod', [p('chardev'), 'c', '1', '3']);
  execFileSync('mknod', [p('blockdev'), 'b', '7', '200']);
  fs.chownSync(p('dir'), 1234, 5678);
  fs.chmodSync(p('dir/sub'), 0o1777);
  fs.writeFileSync(p('dir/odd-owner'), 'x');
  fs.chownSync(p('dir/odd-owner'), 3_000_000, 65534); // above ustar's 7 octal digits: a pax uid
  fs.chmodSync(p('dir/odd-owner'), 0o2640);
  await libc('lsetxattr', 'test', p('dir'), 'user.dir', Buffer.from([0, 1, 2, 255]), 0);
  fs.mkdirSync(p(DEEP), { recursive: true });
  fs.writeFileSync(path.join(p(DEEP), LONG), 'deep and long');
  fs.writeFileSync(at(root, NOT_UTF8), 'bytes, not text');
  fs.mkdirSync(p('locked'), 0o500);
  fs.writeFileSync(p('locked/inside'), 'in a read-only directory');
  fs.chmodSync(p('locked'), 0o500);
  fs.utimesSync(p('regular'), 1_500_000_000.123456, 1_500_000_000.987654);
  fs.lutimesSync(p('symlink-outside'), 1_000_000_000, 1_000_000_000.5);
  fs.utimesSync(p('dir/sub'), 86400, 86400);
  fs.utimesSync(root, 1_600_000_000, 1_600_000_000.25); // the root's own metadata travels too
  fs.chmodSync(root, 0o751);
}

export interface Snap {
  kind: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  size: number;
  content?: string;
  link?: string;
  rdev?: number;
  xattrs: Record<string, string>;
  sparse?: boolean;
  /** The first path (in sorted order) of the inode's hard link group. */
  linkGroup?: string;
}

const kindOf = (st: fs.BigIntStats) =>
  st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : 'other';

/** Every entry of the tree at `root` (its own as '.'), keyed by the hex of its relative path bytes' display. */
export async function snapshot(root: string, opts: { times?: boolean; xattrs?: boolean } = {}): Promise<Map<string, Snap>> {
  const out = new Map<string, Snap>();
  const groups = new Map<bigint, string>();
  const visit = async (rel: Buffer) => {
    const full = rel.length ? at(root, rel) : B(root);
    const st = fs.lstatSync(full, { bigint: true });
    const key = rel.length ? rel.toString('latin1') : '.';
    const xattrs: Record<string, string> = {};
    for (const n of opts.xattrs === false ? [] : (await libc('llistxattr', 'snap', full)).sort()) {
      if (n === 'security.selinux') continue; // set by the host's policy on creation, not by us
      xattrs[n] = (await libc('lgetxattr', 'snap', full, n))!.toString('hex');
    }
    const s: Snap = { kind: kindOf(st), mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), mtimeNs: opts.times === false ? 0n : st.mtimeNs, size: Number(st.size), xattrs };
    if (s.kind === 'symlink') s.mode = 0;
    if (s.kind === 'dir') s.size = 0;
    if (s.kind === 'file') {
      s.content = createHash('sha256').update(fs.readFileSync(full)).digest('hex');
      s.sparse = st.blocks * 512n < st.size;
      if (st.nlink > 1n) {
        s.linkGroup = groups.get(st.ino) ?? key;
        groups.set(st.ino, s.linkGroup);
      }
    }
    if (s.kind === 'symlink') s.link = fs.readlinkSync(full, { encoding: 'buffer' }).toString('latin1');
    if (s.kind === 'char' || s.kind === 'block') s.rdev = Number(st.rdev);
    out.set(key, s);
    if (s.kind === 'dir') {
      const names = (fs.readdirSync(full, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare);
      for (const n of names) await visit(rel.length ? Buffer.concat([rel, B('/'), n]) : n);
    }
  };
  await visit(Buffer.alloc(0));
  return out;
}

/** Asserts two snapshots are identical, reporting the first differing entry by name. */
export function expectSameTree(actual: Map<string, Snap>, expected: Map<string, Snap>): void {
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [k, v] of expected) expect({ entry: k, ...actual.get(k) }).toEqual({ entry: k, ...v });
}

/** Entries of a directory, for "nothing was left behind" checks. */
export const listing = (dir: string): string[] => fs.readdirSync(dir).sort();
