// A volume's directory: where it may be (confined, not overlapping hostvol's own files or another
// volume), making it with the owner and mode asked for, opening it for a mount, and deleting it.
// Every step after the first judgement walks from the directory's allowed root by file descriptor
// without following symlinks (host/tree.ts), so a path component swapped for a symlink or renamed
// meanwhile makes the step fail; it can never redirect it outside.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PathError, describe } from '../errors';
import type { Labeler } from '../host/labels';
import { isInside, shown, type Confinement } from '../host/paths';
import type { Mounter } from '../host/mounter';
import { RetireError, TreeError, ensureBeneath, isNotFound, makeBeneath, openBeneath, removeEntry, renameIn, retireBeneath, type Dir } from '../host/tree';
import { toPlugin, type HostPaths } from './hostpaths';
import type { VolumeOptions } from './options';
import type { Volume } from './volume';
import type { VolumeTable } from './volume-table';

/** What placing a directory needs to know. */
export interface Placement {
  confinement: Confinement;
  /** Real path of the default home of volumes. */
  dataRoot: string;
  stateDir: string;
  mountsDir: string;
  /** Managed mode: the host directory `-o path=` refers to, and where the plugin sees it. */
  hostPaths?: HostPaths;
}

/** Where a new volume's directory is (its real location), whether it exists, and what mkdir -p would make first. */
export async function locate(
  p: Placement,
  volumes: VolumeTable,
  name: string,
  options: VolumeOptions,
): Promise<{ real: string; exists: boolean; made: string | null }> {
  const { real, here } = options.path
    ? await p.confinement.place(toPlugin(p.hostPaths, options.path), `option path of volume "${name}":`)
    : await p.confinement.place(path.join(p.dataRoot, name), `directory of volume "${name}":`);
  checkPlacement(p, volumes, name, real, options);
  if (here.exists && !here.isDir) {
    throw new PathError(`volume "${name}": ${shown(real)} exists and is not a directory; choose another path`);
  }
  return { real, exists: here.exists, made: here.firstMissing };
}

/** Refuses directories that would hold hostvol's own state or another volume's data. */
export function checkPlacement(p: Placement, volumes: VolumeTable, name: string, real: string, options: VolumeOptions): void {
  const { dataRoot, stateDir, confinement, mountsDir } = p;
  const fail = (why: string) => {
    throw new PathError(`volume "${name}": ${shown(real)} ${why}; choose another path`);
  };
  if (isInside(dataRoot, real)) fail("is or contains hostvol's data root");
  if (isInside(stateDir, real) || (isInside(real, stateDir) && !isInside(real, dataRoot))) {
    fail("is or overlaps hostvol's state directory");
  }
  if (isInside(real, mountsDir) || isInside(mountsDir, real)) fail("overlaps hostvol's mount directory");
  if (options.onRemove === 'delete' && confinement.isRoot(real)) {
    fail('is an allowed root, which onremove=delete would erase');
  }
  const other = volumes.overlapping(real);
  if (other && other.name !== name) fail(`is or nests with the directory of volume "${other.name}" (${shown(other.path)})`);
}

/** The allowed root a volume's directory lies in, and its path below that root. */
function rooted(v: Volume, confinement: Confinement): { root: string; rel: string } {
  const root = confinement.rootOf(v.path);
  if (!root) {
    throw new PathError(
      `volume "${v.name}": its directory ${shown(v.path)} is no longer inside an allowed path (${confinement.roots.join(', ')}); ` +
        'start hostvol with --allow-path for it again, or remove the volume',
    );
  }
  return { root, rel: path.relative(root, v.path) };
}

/** Opens the volume's directory from its root without following symlinks; the caller closes it. */
export async function openDirectory(v: Volume, confinement: Confinement): Promise<Dir> {
  const { root, rel } = rooted(v, confinement);
  try {
    return await openBeneath(root, rel);
  } catch (err) {
    throw unreachable(v, err);
  }
}

/**
 * Binds the volume's directory, reached as openDirectory reaches it, onto `target`: in one job, or,
 * when `labeler` is to relabel the tree first, opened, relabelled and then bound through its fd. A
 * directory that cannot be reached fails with openDirectory's message, a bind with the mounter's.
 */
export async function bindDirectory(v: Volume, confinement: Confinement, mounter: Mounter, target: string, labeler?: Labeler): Promise<void> {
  if (labeler) {
    const dir = await openDirectory(v, confinement);
    try {
      await labeler.relabel(dir);
      await mounter.bind(dir.fd, target, v.options.readOnly);
    } finally {
      await dir.close();
    }
    return;
  }
  const { root, rel } = rooted(v, confinement);
  await mounter.bindBeneath(root, rel, target, v.options.readOnly).catch((err) => {
    throw err instanceof TreeError ? unreachable(v, err) : err;
  });
}

function unreachable(v: Volume, err: unknown): PathError {
  return new PathError(
    isNotFound(err)
      ? `volume "${v.name}": its directory ${shown(v.path)} no longer exists (removed outside hostvol?); recreate the directory, or remove the volume`
      : `volume "${v.name}": its directory ${shown(v.path)} cannot be opened safely (${describe(err)}); ` +
          'put the directory back as a plain directory, or remove the volume',
  );
}

/**
 * Makes the directory (or opens an existing one) and applies ownership, mode and label, each on the
 * open descriptor, then syncs it so an acknowledged Create survives a power cut. An existing directory
 * is put back as it was if a step fails.
 */
export async function prepareDirectory(v: Volume, confinement: Confinement, labeler: Labeler): Promise<void> {
  const { uid, gid, mode, label } = v.options;
  const { root, rel } = rooted(v, confinement);
  const owner = uid !== undefined || gid !== undefined;
  const relabel = !!label && labeler.enabled;
  // makeBeneath sets exactly 0755 on what it makes, so the process umask cannot narrow the default,
  // and fsyncs what it made with its parent. With no option to apply, that is all (one job).
  if (v.createdBy === 'hostvol' && !owner && mode === undefined && !relabel) {
    await ensureBeneath(root, rel, 0o755);
    return;
  }
  const dir = v.createdBy === 'hostvol' ? (await makeBeneath(root, rel, 0o755)).dir : await openDirectory(v, confinement);
  const before = v.createdBy === 'existing' ? await dir.stat() : undefined;
  try {
    // A directory hostvol made gets the options; an existing one only what was explicitly given.
    if (owner) await dir.chown(uid ?? -1, gid ?? -1);
    if (mode !== undefined) await dir.chmod(mode);
    if (relabel) await labeler.relabel(dir);
    await dir.sync();
  } catch (err) {
    if (before) {
      await dir.chown(before.uid, before.gid).catch(() => undefined);
      await dir.chmod(before.mode & 0o7777).catch(() => undefined);
    }
    throw err;
  } finally {
    await dir.close();
  }
}

/**
 * Deletes a volume's directory. The directory is first renamed to a trash name beside it (atomic, and
 * synced), so a delete cut short never leaves a half-emptied directory under the volume's own path;
 * the trash name is derived from the path, so recovery finds it again. Then the directories mkdir -p
 * made for it go too, while they are empty (another volume may have been put in one meanwhile).
 * An empty directory (the usual volume that was never written) is renamed and removed in one job
 * with one fsync: with nothing in it there is nothing to half-delete, and no mount inside it either.
 * Anything else first passes `beforeDeleting` (the caller's check for mounts inside).
 */
export async function deleteDirectory(
  v: Volume,
  confinement: Confinement,
  renamed: () => void = () => undefined,
  beforeDeleting: () => Promise<void> = async () => undefined,
): Promise<void> {
  const { root, rel } = rooted(v, confinement);
  if (rel === '') throw new PathError(`volume "${v.name}": refusing to delete ${shown(v.path)}, an allowed root`);
  const base = path.basename(v.path);
  const trash = trashName(base);
  let quick: Awaited<ReturnType<typeof retireBeneath>>;
  try {
    quick = await retireBeneath(root, path.dirname(rel) === '.' ? '' : path.dirname(rel), base, trash);
  } catch (err) {
    if (err instanceof RetireError) {
      if (err.renamed) renamed();
      throw err;
    }
    if (!isNotFound(err)) throw new PathError(`volume "${v.name}": cannot open the parent of ${shown(v.path)} safely (${describe(err)})`);
    // The parent is gone, so is the directory. A delete cut short by a crash after it removed some
    // of the directories mkdir -p made may still have left those above: finish them.
    if (v.made) await removeEmptyParents(v, root, rel);
    return;
  }
  if (quick.outcome === 'removed') renamed();
  else {
    const parent = quick.parent;
    const gone = (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err; // already in the trash (a remove cut short), or gone
    };
    try {
      if (quick.outcome === 'renamed') renamed();
      else {
        await beforeDeleting();
        await renameIn(parent, base, trash).catch(gone);
        renamed();
      }
      // In the trash from a remove cut short, filled while it was being retired, or not empty at all.
      await removeEntry(parent, trash).catch(gone);
    } finally {
      await parent.close();
    }
  }
  if (v.made) await removeEmptyParents(v, root, rel);
}

/** A fixed-length hidden name: a long directory name plus a suffix would exceed NAME_MAX. */
export function trashName(base: string): string {
  return `.hostvol-trash-${createHash('sha256').update(base).digest('hex').slice(0, 24)}`;
}

/** rmdir of the now-empty parents up to and including `made`, bottom-up, stopping at the first non-empty one. */
async function removeEmptyParents(v: Volume, root: string, rel: string): Promise<void> {
  const made = path.relative(root, v.made!);
  if (made === '' || made.startsWith('..')) return;
  for (let dir = path.dirname(rel); dir !== '.' && isInside(dir, made); dir = path.dirname(dir)) {
    let parent: Dir;
    try {
      parent = await openBeneath(root, path.dirname(dir) === '.' ? '' : path.dirname(dir));
    } catch (err) {
      if (isNotFound(err)) continue; // removed too, before a crash: the ones above may be left
      return;
    }
    try {
      // Already gone after a crash is fine; the sync makes that removal durable if it was not yet.
      await fs.promises.rmdir(parent.at(path.basename(dir))).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      await parent.sync();
    } catch {
      return; // not empty (another volume, someone's files): it and everything above stay
    } finally {
      await parent.close();
    }
  }
}
