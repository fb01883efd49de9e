// Filling a volume's directory all at once: the new content is made in a private directory beside
// it (same parent, so the same file system), then swapped in with renameat2(RENAME_EXCHANGE), which
// is atomic: at every instant the volume's path names either the whole old tree or the whole new
// one. The old tree is deleted after the swap. A failure, or an abort (Ctrl-C), deletes the staging
// directory instead, and the volume is as it was. A crash mid-way leaves only a `.<name>.hostvol-*`
// directory beside the volume, never a partial volume. The staging directory is flock'ed for as long
// as the import or clone runs, so `hostvol doctor --fix` can tell such a leftover (no lock: its
// process is gone) from a staging directory in use, here or on another node of a shared data root.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConflictError } from '../errors';
import { LOCK_EX, LOCK_NB, RENAME_EXCHANGE, libc } from '../host/libc';
import { removeEntry, type Dir } from '../host/tree';
import { openChild, openRoot } from '../host/tree-dir';

/** A staging directory's name: `.<volume directory's name>.hostvol-<12 hex digits>`. */
export const STAGING_NAME = /^\.(.+)\.hostvol-[0-9a-f]{12}$/s;

/**
 * Takes the staging lock on `dir` (an open staging directory) without waiting: false when an import
 * or clone holds it. The lock is held until `dir` is closed.
 */
export async function lockStaging(dir: Dir): Promise<boolean> {
  try {
    await libc('flock', dir.path, dir.fd, LOCK_EX | LOCK_NB);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'EWOULDBLOCK' || (err as { code?: string }).code === 'EAGAIN') return false;
    throw err;
  }
}

export interface StageOptions {
  /** Replace a volume that already has content (else that is a ConflictError). */
  force?: boolean;
  /** What the caller calls the target, for messages ("volume \"v\""). */
  what: string;
}

async function isEmpty(dir: Dir): Promise<boolean> {
  const handle = await fs.promises.opendir(dir.at());
  try {
    return (await handle.read()) === null;
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** Gives `staged` the owner, mode and xattrs (an SELinux label) of the directory it will replace. */
async function copyRootMetadata(from: Dir, to: Dir): Promise<void> {
  const st = await from.stat();
  await to.chown(st.uid, st.gid);
  await to.chmod(st.mode & 0o7777);
  for (const name of await libc('llistxattr', from.path, from.self())) {
    const v = await libc('lgetxattr', from.path, from.self(), name);
    if (v) await libc('lsetxattr', to.path, to.self(), name, v, 0);
  }
}

/**
 * Runs `fill` on a fresh staging directory beside `target` (an existing directory, followed as given:
 * the caller's verified volume directory), then swaps it in. `fill` gets a path that reaches the
 * staging directory through an open fd (/proc/self/fd/…), not by name.
 */
export async function replaceContent<T>(target: string, opts: StageOptions, fill: (staging: string) => Promise<T>): Promise<T> {
  const base = path.basename(target);
  const parent = await openRoot(path.dirname(target));
  const name = `.${base}.hostvol-${randomBytes(6).toString('hex')}`;
  let staged = false;
  let lock: Dir | null = null;
  try {
    const current = await openChild(parent, base);
    try {
      if (!opts.force && !(await isEmpty(current))) {
        throw new ConflictError(`${opts.what} is not empty (${target}); use --force to replace its content`);
      }
      await fs.promises.mkdir(parent.at(name), 0o700);
      staged = true;
      lock = await openChild(parent, name);
      await lockStaging(lock);
      await copyRootMetadata(current, lock);
    } finally {
      await current.close();
    }
    const result = await fill(`/proc/self/fd/${parent.fd}/${name}`);
    // Checked again just before the swap: something may have written into it meanwhile.
    if (!opts.force) {
      const again = await openChild(parent, base);
      const empty = await isEmpty(again).finally(() => again.close());
      if (!empty) throw new ConflictError(`${opts.what} gained content while it was being filled (${target}); nothing was changed`);
    }
    // On the host worker already running (it took the staging lock): a worker of its own for this
    // one call would cost a thread start, as long as the swap and its fsync together.
    await libc('renameat2', `${target}: ${name} <-> ${base}`, parent.fd, name, parent.fd, base, RENAME_EXCHANGE);
    await parent.sync();
    // The old tree now has the staging name; deleting it is all that is left.
    await removeEntry(parent, name);
    staged = false;
    return result;
  } finally {
    if (staged) await removeEntry(parent, name).catch(() => undefined);
    await lock?.close();
    await parent.close();
  }
}
