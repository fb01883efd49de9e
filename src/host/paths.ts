// Confinement: where volume directories may live, judged by real location (symlinks resolved the
// way the kernel resolves them). Judging a path is only the first step: every later operation on it
// walks from its root without following symlinks (tree.ts), so a swap after the judgement is refused
// there, not trusted here.
import * as path from 'node:path';
import { PathError } from '../errors';
import { runJob } from './host-worker';
import type { Probe, Resolution } from './path-jobs';

/** True when `child` is `root` or lies below it (plain string prefixes would let /data match /database). */
export function isInside(child: string, root: string): boolean {
  return child === root || child.startsWith(root === '/' ? '/' : `${root}/`);
}

/**
 * The real location of `p`: every existing component resolved with realpath, `..` applied after
 * resolution (as the kernel does), and the part that does not exist yet appended as it would be
 * created by `mkdir -p`. One job on a host worker (path-jobs.ts).
 */
export async function realLocation(p: string): Promise<string> {
  return (await resolve(p, false)).real;
}

/** realLocation, and with `probe` also what is at the real location, in the same job. */
async function resolve(p: string, probe: boolean): Promise<{ real: string; here?: Probe }> {
  const r = await runJob<Resolution>('realLocation', p, probe);
  switch (r.kind) {
    case 'real':
      return r;
    case 'dangling':
      if (r.target === null) throw new PathError(`${shown(r.link)} changed while it was being resolved; try again`);
      throw new PathError(`${shown(r.link)} is a symbolic link to ${shown(r.target)}, which does not exist`);
    case 'notDir':
      throw new PathError(`${shown(r.at)} is not a directory`);
    default:
      // ENAMETOOLONG, ELOOP, EACCES: the errno text would repeat the whole (possibly huge) path.
      throw new PathError(`cannot resolve ${shown(r.at)} (${r.code})`);
  }
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
    return (await this.place(p, what)).real;
  }

  /** judge, and what is at the real location now (a directory or not, what mkdir -p would make first). */
  async place(p: string, what: string): Promise<{ real: string; here: Probe }> {
    let r: { real: string; here?: Probe };
    try {
      r = await resolve(p, true);
    } catch (err) {
      if (err instanceof PathError) throw new PathError(`${what} ${err.message}; choose another path`);
      throw err;
    }
    if (!this.rootOf(r.real)) {
      const where = r.real === p ? shown(p) : `${shown(p)} (really ${shown(r.real)})`;
      throw new PathError(
        `${what} ${where} is outside the allowed paths (${this.roots.join(', ')}); ` +
          'choose a directory inside one of them, or start hostvol with --allow-path for its parent',
      );
    }
    return { real: r.real, here: r.here! };
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
