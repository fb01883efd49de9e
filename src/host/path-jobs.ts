// Resolving a path the way the kernel would (paths.ts realLocation), and probing what is there, as
// one job on a host worker (host-worker.ts): one thread hand-off for the whole path instead of one
// realpath per component. paths.ts words the outcomes.
import type { WorkerHost } from './host-worker';

/** How resolving went: the real location, or where and why it stopped. */
export type Resolution =
  | { kind: 'real'; real: string; here?: Probe }
  /** `link` is a symbolic link to `target` (null: it changed while being read), which does not exist. */
  | { kind: 'dangling'; link: string; target: string | null }
  | { kind: 'notDir'; at: string }
  | { kind: 'error'; at: string; code: string };

/** What is at a real path: a directory, something else, or nothing (and then what `mkdir -p` would make first). */
export interface Probe {
  exists: boolean;
  isDir: boolean;
  firstMissing: string | null;
}

export function pathJobs(h: WorkerHost): void {
  const fs = h.fs;
  const path = require('node:path');
  const codeOf = (err: unknown) => ((err as { code?: unknown }).code as string) ?? 'EIO';

  /**
   * Every existing component resolved with realpath(3) (what fs.promises.realpath calls), `..`
   * applied after resolution as the kernel does, and the part that does not exist yet appended.
   */
  const resolve = (p: string) => {
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
        cur = fs.realpathSync.native(next);
      } catch (err) {
        const code = codeOf(err);
        if (code === 'ENOENT') {
          // A dangling symlink: its target could be anywhere, and mkdir -p would fail on it anyway.
          let link = false;
          try {
            link = fs.lstatSync(next).isSymbolicLink();
          } catch {
            // not there at all: the rest is what mkdir -p would make
          }
          if (!link) return { kind: 'real', real: path.resolve(cur, ...parts.slice(i)) };
          let target: string | null = null;
          try {
            target = fs.readlinkSync(next); // read once more: the name may have changed meanwhile
          } catch {
            // changed while being resolved
          }
          return { kind: 'dangling', link: next, target };
        }
        if (code === 'ENOTDIR') return { kind: 'notDir', at: cur };
        return { kind: 'error', at: next, code };
      }
    }
    return { kind: 'real', real: cur };
  };

  /** What is at `p`: see Probe. */
  const probe = (p: string) => {
    const exists = (q: string) => {
      try {
        return fs.lstatSync(q);
      } catch {
        return undefined;
      }
    };
    const st = exists(p);
    if (st) return { exists: true, isDir: st.isDirectory(), firstMissing: null };
    let missing: string = p;
    for (let cur = path.dirname(p); cur !== missing && !exists(cur); cur = path.dirname(cur)) missing = cur;
    return { exists: false, isDir: false, firstMissing: missing };
  };

  h.jobs.realLocation = ((p: string, andProbe: boolean) => {
    const r = resolve(p);
    return andProbe && r.kind === 'real' ? { ...r, here: probe(r.real) } : r;
  }) as never;
}
