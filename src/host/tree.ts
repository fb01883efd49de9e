// The one way hostvol touches a volume's directory tree: every step from a trusted root is taken
// from an open directory fd with O_NOFOLLOW (see tree-dir.ts for how, without openat in Node), so a
// path component swapped for a symlink or renamed while an operation runs can never lead it outside.
// Judging a path once with realpath and then following it again by name is exactly that hole.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Dir, TreeError, errnoOf, openChild, openRoot, originOf, shownName } from './tree-dir';
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

/** Steps from `dir` into `name`, closing `dir` whether or not the step succeeds. */
async function step(dir: Dir, name: string): Promise<Dir> {
  try {
    return await openChild(dir, name);
  } finally {
    await dir.close();
  }
}

/**
 * Opens the trusted `root` (an absolute real path, followed as given) and then each component of
 * `rel` ('' = the root itself) with O_NOFOLLOW|O_DIRECTORY. A symlink or non-directory on the way is
 * a TreeError (a PathError) with code ENOTDIR; a missing component has code ENOENT.
 */
export async function openBeneath(root: string, rel: string): Promise<Dir> {
  const parts = components(root, rel);
  let dir = await openRoot(root);
  for (const name of parts) dir = await step(dir, name);
  return dir;
}

/**
 * `mkdir -p` beneath `root` with no-follow steps. Each missing component is made with `mode` and then
 * fchmodded to exactly `mode` (the process umask would narrow mkdir's), and fsynced together with its
 * parent, so a power cut cannot lose the new entries. `made` is the absolute path of the first
 * component created (null when all existed), which is what undoing this must remove.
 */
export async function makeBeneath(root: string, rel: string, mode: number): Promise<{ dir: Dir; made: string | null }> {
  const parts = components(root, rel);
  let made: string | null = null;
  let dir = await openRoot(root);
  try {
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i];
      let created = false;
      try {
        await fs.promises.mkdir(dir.at(name), mode);
        created = true;
      } catch (err) {
        // EEXIST: it exists (or another creator won the race); the no-follow open below judges what it is.
        if (errnoOf(err) !== 'EEXIST') throw new TreeError(`cannot create ${dir.child(name)} (${errnoOf(err) ?? err})`, errnoOf(err) ?? 'EIO');
      }
      const parent = dir;
      dir = await openChild(parent, name).catch(async (err) => {
        await parent.close();
        throw err;
      });
      try {
        if (created) {
          made ??= path.join(root, ...parts.slice(0, i + 1));
          await dir.chmod(mode);
          await dir.sync();
          await parent.sync();
        }
      } finally {
        await parent.close();
      }
    }
    return { dir, made };
  } catch (err) {
    await dir.close().catch(() => undefined); // already closed when the failure was in the step itself
    throw err;
  }
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
