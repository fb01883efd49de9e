// Confinement: where volume directories may live, judged by real location (symlinks resolved the
// way the kernel resolves them). Judging a path is only the first step: every later operation on it
// walks from its root without following symlinks (tree.ts), so a swap after the judgement is refused
// there, not trusted here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PathError, describe } from '../errors';

/** True when `child` is `root` or lies below it (plain string prefixes would let /data match /database). */
export function isInside(child: string, root: string): boolean {
  return child === root || child.startsWith(root === '/' ? '/' : `${root}/`);
}

/**
 * The real location of `p`: every existing component resolved with realpath, `..` applied after
 * resolution (as the kernel does), and the part that does not exist yet appended as it would be
 * created by `mkdir -p`.
 */
export async function realLocation(p: string): Promise<string> {
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
      cur = await fs.promises.realpath(next);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        // A dangling symlink: its target could be anywhere, and mkdir -p would fail on it anyway.
        const st = await fs.promises.lstat(next).catch(() => undefined);
        if (st?.isSymbolicLink()) {
          // Read once more: the name may have changed again meanwhile (someone is swapping it).
          const target = await fs.promises.readlink(next).catch(() => undefined);
          if (target === undefined) throw new PathError(`${shown(next)} changed while it was being resolved; try again`);
          throw new PathError(`${shown(next)} is a symbolic link to ${shown(target)}, which does not exist`);
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

export class Confinement {
  /** Real paths, resolved once at start-up, so a root reached through a symlink confines by its target. */
  private constructor(readonly roots: string[]) {}

  static async create(roots: string[]): Promise<Confinement> {
    const real = await Promise.all(roots.map((r) => realLocation(path.resolve(r))));
    return new Confinement([...new Set(real)]);
  }

  /** Resolves `p` and returns its real location, or throws when it lies outside every root. */
  async judge(p: string, what: string): Promise<string> {
    let real: string;
    try {
      real = await realLocation(p);
    } catch (err) {
      if (err instanceof PathError) throw new PathError(`${what} ${err.message}; choose another path`);
      throw err;
    }
    if (!this.rootOf(real)) {
      const where = real === p ? shown(p) : `${shown(p)} (really ${shown(real)})`;
      throw new PathError(
        `${what} ${where} is outside the allowed paths (${this.roots.join(', ')}); ` +
          'choose a directory inside one of them, or start hostvol with --allow-path for its parent',
      );
    }
    return real;
  }

  /** The innermost root that holds `p` (the trusted directory tree walks start from), if any. */
  rootOf(p: string): string | undefined {
    let best: string | undefined;
    for (const r of this.roots) if (isInside(p, r) && (!best || r.length > best.length)) best = r;
    return best;
  }

  /** True when `p` is one of the roots themselves, which must never be deleted. */
  isRoot(p: string): boolean {
    return this.roots.includes(p);
  }
}

/** Paths in messages: hostile ones can be huge or binary, so show a readable prefix. */
export function shown(p: string): string {
  const printable = JSON.stringify(p).slice(1, -1);
  return printable.length > 200 ? `${printable.slice(0, 200)}…` : printable;
}
