// The one way hostvol touches a volume's directory tree: every step from a trusted root is taken
// from an open directory fd with O_NOFOLLOW (see tree-dir.ts for how, without openat in Node), so a
// path component swapped for a symlink or renamed while an operation runs can never lead it outside.
// Judging a path once with realpath and then following it again by name is exactly that hole.
// Walks of a bounded number of steps (a path's components) run whole as one job on a host worker
// (tree-jobs.ts); walks over a whole tree (tree-walk.ts) go step by step, so one huge tree never
// holds a worker for long.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { JobFailure, runJob } from './host-worker';
import { Dir, TreeError, errnoOf, originOf, shownName } from './tree-dir';
import type { WalkFailure } from './tree-jobs';
import { removeFrom } from './tree-walk';

export { Dir, TreeError, isNotFound } from './tree-dir';
export { emptyTree, measureTree, setXattrTree } from './tree-walk';

/** The components of a relative path; '.' and '..' would step off the no-follow walk, so they are refused. */
function components(root: string, rel: string): string[] {
  if (!path.isAbsolute(root)) throw new TreeError(`${root} is not an absolute path`, 'EINVAL');
  if (rel.startsWith('/')) throw new TreeError(`${rel} must be relative to ${root}`, 'EINVAL');
  const parts = rel.split('/').filter((c) => c !== '');
  if (parts.some((c) => c === '.' || c === '..' || c.includes('\0'))) {
    throw new TreeError(`${root}/${shownName(rel)} has a '.', '..' or NUL component; give a plain relative path`, 'EINVAL');
  }
  return parts;
}

/** The path of component `index` of `parts` below `root`, for messages (-1: the root). */
function shownPath(root: string, parts: string[], index: number): string {
  let p = root;
  for (let i = 0; i <= index; i++) p = `${p === '/' ? '' : p}/${shownName(parts[i])}`;
  return p;
}

/** A walk job's failure (tree-jobs.ts WalkFailure) worded as tree-dir.ts words the same failure. */
function walkError(err: unknown, root: string, parts: string[]): unknown {
  if (!(err instanceof JobFailure) || typeof err.fields.index !== 'number') return err;
  const { code } = err;
  const f = err.fields as unknown as WalkFailure;
  const p = shownPath(root, parts, f.index);
  if (f.step === 'mkdir') return new TreeError(`cannot create ${p} (${code})`, code);
  if (f.step === 'set up') return new TreeError(`cannot set up the new directory ${p} (${code})`, code);
  if (code === 'ENOENT') return new TreeError(`${p} does not exist`, code);
  if (f.index < 0) return new TreeError(code === 'ENOTDIR' ? `${p} is not a directory` : `cannot open ${p} (${code})`, code);
  if (code === 'ENOTDIR') {
    const what = f.symlink ? 'a symbolic link' : 'not a directory';
    return new TreeError(`${p} is not a plain directory: it is ${what} (swapped for a symlink?); refusing to follow it`, code);
  }
  return new TreeError(`cannot open ${p} (${code})`, code);
}

/**
 * Runs a job whose first step is the no-follow walk from `root` through `rel` (tree-jobs.ts walk):
 * its arguments are root, the components, then `args`. A failure of the walk is a TreeError worded
 * as openBeneath's; any other failure of the job is passed on as it came.
 */
export async function walkJob<T>(job: string, root: string, rel: string, ...args: unknown[]): Promise<T> {
  const parts = components(root, rel);
  try {
    return await runJob<T>(job, root, parts, ...args);
  } catch (err) {
    throw walkError(err, root, parts);
  }
}

/**
 * Opens the trusted `root` (an absolute real path, followed as given) and then each component of
 * `rel` ('' = the root itself) with O_NOFOLLOW|O_DIRECTORY, as one job on a host worker. A symlink
 * or non-directory on the way is a TreeError (a PathError) with code ENOTDIR; a missing component
 * has code ENOENT.
 */
export async function openBeneath(root: string, rel: string): Promise<Dir> {
  const parts = components(root, rel);
  try {
    const fd = await runJob<number>('openBeneath', root, parts);
    return new Dir(fd, shownPath(root, parts, parts.length - 1));
  } catch (err) {
    throw walkError(err, root, parts);
  }
}

/**
 * `mkdir -p` beneath `root` with no-follow steps, as one job on a host worker. Each missing component
 * is made with `mode` and then fchmodded to exactly `mode` (the process umask would narrow mkdir's),
 * and fsynced together with its parent, so a power cut cannot lose the new entries. `made` is the
 * absolute path of the first component created (null when all existed), which is what undoing this
 * must remove.
 */
export async function makeBeneath(root: string, rel: string, mode: number): Promise<{ dir: Dir; made: string | null }> {
  const { fd, made } = await make(root, rel, mode, true);
  return { dir: new Dir(fd, shownPath(root, components(root, rel), components(root, rel).length - 1)), made };
}

/** makeBeneath for a caller that needs nothing more of the directory: it is closed on the worker. */
export async function ensureBeneath(root: string, rel: string, mode: number): Promise<{ made: string | null }> {
  return { made: (await make(root, rel, mode, false)).made };
}

async function make(root: string, rel: string, mode: number, keepOpen: boolean): Promise<{ fd: number; made: string | null }> {
  const parts = components(root, rel);
  try {
    const r = await runJob<{ fd: number; made: number }>('makeBeneath', root, parts, mode, keepOpen);
    return { fd: r.fd, made: r.made < 0 ? null : path.join(root, ...parts.slice(0, r.made + 1)) };
  } catch (err) {
    throw walkError(err, root, parts);
  }
}

/** A retire that failed at its rename or after it (`renamed`: the entry is in the trash now). */
export class RetireError extends TreeError {
  constructor(
    message: string,
    code: string,
    readonly renamed: boolean,
  ) {
    super(message, code);
  }
}

/**
 * Opens directory `parentRel` beneath `root` and, when its entry `name` is an empty directory on the
 * parent's own mount, renames it to `trash` and removes it with one fsync of the parent, all in one
 * job (tree-jobs.ts retireBeneath). 'removed': done. Otherwise the open parent comes back: 'busy'
 * (not an empty directory, nothing was done), 'absent' (no such entry), or 'renamed' (renamed, but
 * not empty after all: filled meanwhile), and the caller goes on with removeEntry. A failure of the
 * walk is a TreeError as from openBeneath; one at the rename or after it is a RetireError.
 */
export async function retireBeneath(
  root: string,
  parentRel: string,
  name: string,
  trash: string,
): Promise<{ outcome: 'removed' } | { outcome: 'renamed' | 'absent' | 'busy'; parent: Dir }> {
  const parts = components(root, parentRel);
  const where = shownPath(root, parts, parts.length - 1);
  const names = [name, trash].map((n) => {
    if (n === '' || n === '.' || n === '..' || n.includes('/') || n.includes('\0')) throw new TreeError(`"${shownName(n)}" is not a single name inside ${where}`, 'EINVAL');
    return Buffer.from(n);
  });
  let r: { outcome: 'removed' | 'renamed' | 'absent' | 'busy'; fd: number };
  try {
    r = await runJob('retireBeneath', root, parts, ...names);
  } catch (err) {
    if (err instanceof JobFailure && (err.fields.step === 'rename' || err.fields.step === 'remove')) {
      const what = err.fields.step === 'rename' ? `rename ${where}/${shownName(name)} to ${shownName(trash)}` : `remove ${where}/${shownName(trash)}`;
      throw new RetireError(`cannot ${what} (${err.code})`, err.code, err.fields.renamed === true);
    }
    throw walkError(err, root, parts);
  }
  return r.outcome === 'removed' ? { outcome: 'removed' } : { outcome: r.outcome, parent: new Dir(r.fd, where) };
}

/**
 * Removes entry `name` of `parent`: a file or symlink is unlinked (never followed), a directory is
 * emptied (never entering another mount) and removed. Then `parent` is fsynced. A missing entry is
 * not an error: what the caller wanted gone is gone.
 */
export async function removeEntry(parent: Dir, name: string | Buffer): Promise<void> {
  const b = Buffer.isBuffer(name) ? name : Buffer.from(name);
  parent.at(b); // refuses '', '.', '..' and names with '/' before anything is touched
  await removeFrom(parent, b, true, await originOf(parent));
  await parent.sync();
}

/** Renames `from` to `to` inside `parent` (renameat on the fd: neither name is followed), then fsyncs it. */
export async function renameIn(parent: Dir, from: string | Buffer, to: string | Buffer): Promise<void> {
  try {
    await fs.promises.rename(parent.at(from), parent.at(to));
  } catch (err) {
    if (err instanceof TreeError) throw err;
    const code = errnoOf(err) ?? 'EIO';
    throw new TreeError(`cannot rename ${parent.child(from)} to ${shownName(to)} (${code})`, code);
  }
  await parent.sync();
}
