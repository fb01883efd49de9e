// What an attacker could make hostvol touch outside the allowed roots, captured before and after a
// run: every entry's existence, type, mode, owner and extended attributes (security.selinux is what
// z/Z relabelling writes), file contents, and the mount table of this namespace.
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inside } from './sandbox';

/** A decoy label no relabel would write: if it changes, hostvol wrote through a symlink. */
export const DECOY_LABEL = 'system_u:object_r:decoy_t:s0';
export const DECOY_USER_XATTR = 'user.hostvol-test';

/** Sets an xattr on `p` itself (never a symlink's target); false when the kernel refuses it. */
export function trySetXattr(p: string, name: string, value: string): boolean {
  try {
    execFileSync('setfattr', ['-h', '-n', name, '-v', value, '--', p], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Every xattr of `p` itself, as "name=value" lines sorted by name ('' when it has none). */
function xattrs(p: string): string {
  let out: string;
  try {
    out = execFileSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '--', p], { encoding: 'utf8' });
  } catch {
    return '?';
  }
  return out.split('\n').filter((l) => l.includes('=')).sort().join(',');
}

export type FsSnapshot = Map<string, string>;

/**
 * Entries of `roots` (recursively), each with type, mode, uid:gid, xattrs and, for files, a content
 * hash. Paths inside `exclude` are left out entirely: they belong to hostvol or to the attackers.
 * Directory times are left out on purpose: they are not what an escape would change.
 */
export function snapshotTree(roots: string[], exclude: string[]): FsSnapshot {
  const out: FsSnapshot = new Map();
  const walk = (p: string) => {
    if (exclude.some((e) => inside(p, e))) return;
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) return;
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
    let extra = '';
    if (st.isSymbolicLink()) extra = `-> ${fs.readlinkSync(p)}`;
    else if (st.isFile()) extra = crypto.createHash('sha1').update(fs.readFileSync(p)).digest('hex');
    out.set(p, `${type} mode=${(st.mode & 0o7777).toString(8)} owner=${st.uid}:${st.gid} xattrs=[${xattrs(p)}] ${extra}`);
    if (st.isDirectory()) for (const name of fs.readdirSync(p)) walk(path.join(p, name));
  };
  for (const r of roots) walk(r);
  return out;
}

/**
 * Every entry of either snapshot, with what changed about it: which fields ("mode owner xattrs …"),
 * "removed" or "created"; `change` is undefined for an entry that is the same.
 */
export function compareTrees(before: FsSnapshot, after: FsSnapshot): { path: string; change?: string }[] {
  const fields = (d: string) => new Map(d.split(' ').map((f, i) => (f.includes('=') && !f.startsWith('xattrs') ? [f.split('=')[0], f] : [i === 0 ? 'type' : f.startsWith('xattrs') ? 'xattrs' : `#${i}`, f])));
  const out: { path: string; change?: string }[] = [];
  for (const p of new Set([...before.keys(), ...after.keys()])) {
    const b = before.get(p);
    const a = after.get(p);
    if (b === a) out.push({ path: p });
    else if (a === undefined) out.push({ path: p, change: `removed (was ${b})` });
    else if (b === undefined) out.push({ path: p, change: `created (${a})` });
    else {
      const fb = fields(b);
      const fa = fields(a);
      const what = [...new Set([...fb.keys(), ...fa.keys()])].filter((k) => fb.get(k) !== fa.get(k)).map((k) => (k.startsWith('#') ? 'content' : k));
      out.push({ path: p, change: `changed ${what.join(', ')}: ${b} => ${a}` });
    }
  }
  return out;
}

export interface MountEntry {
  id: string;
  dev: string;
  /** The directory of its file system the mount shows (for a bind mount, where its source was). */
  root: string;
  target: string;
  options: string;
  fstype: string;
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function readMountinfo(): MountEntry[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((line) => {
    const f = line.split(' ');
    return { id: f[0], dev: f[2], root: unescape(f[3]), target: unescape(f[4]), options: f[5], fstype: f[f.indexOf('-') + 1] };
  });
}

/**
 * The host path a bind mount shows: its root field is relative to its file system, so it is joined
 * to where that file system's own root is mounted. Undefined when that root is not mounted here.
 */
export function bindSource(m: MountEntry, table = readMountinfo()): string | undefined {
  const fsRoot = table.find((e) => e.dev === m.dev && e.root === '/');
  return fsRoot ? path.join(fsRoot.target, m.root) : undefined;
}

/**
 * The mounts that involve `dir` (mounted at or below it, or showing a directory from below it),
 * except the `benign` ones (hostvol's own binds of volume directories, which come and go).
 */
export function mountsInvolving(dir: string, benign: (target: string, source: string) => boolean): string[] {
  const table = readMountinfo();
  const out: string[] = [];
  for (const m of table) {
    const source = bindSource(m, table) ?? `${m.dev}:${m.root}`;
    if (!inside(m.target, dir) && !inside(source, dir)) continue;
    if (!benign(m.target, source)) out.push(`${m.target} shows ${source} (${m.fstype} ${m.options})`);
  }
  return out.sort();
}

/** The most recent mount at `target` (the one a path lookup sees), if any. */
export function topMountAt(target: string): MountEntry | undefined {
  return readMountinfo().filter((m) => m.target === target).pop();
}
