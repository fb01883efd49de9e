// Confinement: where volume directories may live, judged by real location (symlinks resolved the
// way the kernel resolves them), and a tree delete that never leaves the directory it was given.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PathError, describe } from '../errors';
import { mountPoints } from './mountinfo';

/** True when `child` is `root` or lies below it (plain string prefixes would let /data match /database). */
export function isInside(child: string, root: string): boolean {
  return child === root || child.startsWith(root === '/' ? '/' : `${root}/`);
}

/**
 * The real location of `p`: every existing component resolved with realpath, `..` applied after
 * resolution (as the kernel does), and the part that does not exist yet appended as it would be
 * created by `mkdir -p`.
 */
export function realLocation(p: string): string {
  const parts = p.split('/').filter((c) => c !== '' && c !== '.');
  let cur = '/';
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (part === '..') {
      cur = path.dirname(cur);
      continue;
    }
    const next = path.join(cur, part);
    try {
      cur = fs.realpathSync(next);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        // A dangling symlink: its target could be anywhere, and mkdir -p would fail on it anyway.
        if (fs.lstatSync(next, { throwIfNoEntry: false })?.isSymbolicLink()) {
          throw new PathError(`${shown(next)} is a symbolic link to ${shown(fs.readlinkSync(next))}, which does not exist`);
        }
        return path.resolve(cur, ...parts.slice(i));
      }
      if (code === 'ENOTDIR') throw new PathError(`${shown(cur)} is not a directory`);
      // ENAMETOOLONG, ELOOP, EACCES: the errno text would repeat the whole (possibly huge) path.
      throw new PathError(`cannot resolve ${shown(next)} (${code ?? describe(err)})`);
    }
  }
  return cur;
}

/** The nearest path component that does not exist yet: what `mkdir -p p` would create first. */
export function firstMissing(p: string): string | undefined {
  let missing: string | undefined;
  for (let cur = p; ; cur = path.dirname(cur)) {
    if (fs.existsSync(cur)) return missing;
    missing = cur;
    if (cur === '/') return missing;
  }
}

export class Confinement {
  readonly roots: string[];

  /** `roots` are resolved once, so a root reached through a symlink still confines by its target. */
  constructor(roots: string[]) {
    this.roots = [...new Set(roots.map((r) => realLocation(path.resolve(r))))];
  }

  /** Resolves `p` and returns its real location, or throws when it lies outside every root. */
  judge(p: string, what: string): string {
    let real: string;
    try {
      real = realLocation(p);
    } catch (err) {
      if (err instanceof PathError) throw new PathError(`${what} ${err.message}; choose another path`);
      throw err;
    }
    if (!this.roots.some((root) => isInside(real, root))) {
      const where = real === p ? shown(p) : `${shown(p)} (really ${shown(real)})`;
      throw new PathError(
        `${what} ${where} is outside the allowed paths (${this.roots.join(', ')}); ` +
          'choose a directory inside one of them, or start hostvol with --allow-path for its parent',
      );
    }
    return real;
  }

  /** True when `p` is one of the roots themselves, which must never be deleted. */
  isRoot(p: string): boolean {
    return this.roots.includes(p);
  }
}

/** `mkdir -p` that reports the real error: Node's recursive mkdir turns ENOSPC into ENOENT. */
export async function makeDirs(p: string, mode: number): Promise<void> {
  const missing: string[] = [];
  for (let cur = p; !fs.existsSync(cur); cur = path.dirname(cur)) missing.unshift(cur);
  for (const dir of missing) {
    await fs.promises.mkdir(dir, { mode }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
}

/**
 * Removes the directories above `dir`, up to and including `top`, that are empty: what `mkdir -p`
 * made for a volume, without touching a parent another volume still uses, a root, or anything outside.
 */
export function removeEmptyParents(dir: string, top: string, confinement: Confinement): void {
  for (let p = path.dirname(dir); isInside(p, top) && p !== dir; dir = p, p = path.dirname(p)) {
    if (confinement.isRoot(p) || !confinement.roots.some((r) => isInside(p, r))) return;
    try {
      fs.rmdirSync(p);
    } catch {
      return; // not empty (another volume, someone's files) or already gone
    }
  }
}

/** Paths in messages: hostile ones can be huge or binary, so show a readable prefix. */
function shown(p: string): string {
  const printable = JSON.stringify(p).slice(1, -1);
  return printable.length > 200 ? `${printable.slice(0, 200)}…` : printable;
}

/**
 * Deletes the tree at `dir` without following symlinks and without crossing into other file
 * systems. `dir` must be its own real path, lie strictly inside a root, and not be one.
 */
export async function removeTree(dir: string, confinement: Confinement): Promise<void> {
  let st: fs.Stats;
  try {
    st = await fs.promises.lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const real = fs.realpathSync(dir);
  if (real !== dir || confinement.isRoot(dir) || !confinement.roots.some((r) => isInside(dir, r))) {
    throw new PathError(`refusing to delete ${dir}: it is not a directory strictly inside an allowed path`);
  }
  if (!st.isDirectory()) throw new PathError(`refusing to delete ${dir}: it is not a directory`);
  // A bind mount of the same file system has the same st_dev, so ask the kernel's mount table.
  const mounted = mountPoints().find((m) => isInside(m, dir));
  if (mounted) throw new PathError(`refusing to delete ${dir}: ${mounted} is mounted inside it; unmount it first`);
  await removeEntries(dir, st.dev);
}

async function removeEntries(dir: string, dev: number): Promise<void> {
  for (const name of await fs.promises.readdir(dir)) {
    const child = path.join(dir, name);
    const st = await fs.promises.lstat(child);
    if (!st.isDirectory()) {
      // Symlinks are unlinked, never followed.
      await fs.promises.unlink(child);
      continue;
    }
    if (st.dev !== dev) {
      throw new PathError(`refusing to delete ${child}: another file system is mounted there; unmount it first`);
    }
    // A directory swapped for a symlink between lstat and readdir would lead outside; re-check.
    if (fs.realpathSync(child) !== child) throw new PathError(`refusing to delete ${child}: it moved while deleting`);
    await removeEntries(child, dev);
  }
  await fs.promises.rmdir(dir);
}
