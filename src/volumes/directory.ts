// A volume's directory: where it may be (confined, not overlapping hostvol's own files or another
// volume), making it with the owner and mode asked for, and checking it is still itself before a mount.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DriverDeps } from './driver';
import { PathError } from '../errors';
import { toPlugin } from './hostpaths';
import type { Labeler } from '../host/labels';
import type { VolumeOptions } from './options';
import { isInside, makeDirs } from '../host/paths';
import type { Volume } from './volume';
import type { VolumeTable } from './volume-table';

/** Where a new volume's directory is (its real location), and whether it exists already. */
export function locate(deps: DriverDeps, volumes: VolumeTable, name: string, options: VolumeOptions): { real: string; exists: boolean } {
  const { confinement, dataRoot, hostPaths } = deps;
  const real = options.path
    ? confinement.judge(toPlugin(hostPaths, options.path), `option path of volume "${name}":`)
    : confinement.judge(path.join(dataRoot, name), `directory of volume "${name}":`);
  checkPlacement(deps, volumes, name, real, options);
  const st = fs.statSync(real, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) {
    throw new PathError(`volume "${name}": ${real} exists and is not a directory; choose another path`);
  }
  return { real, exists: st !== undefined };
}

/** Refuses directories that would hold hostvol's own state or another volume's data. */
function checkPlacement(deps: DriverDeps, volumes: VolumeTable, name: string, real: string, options: VolumeOptions): void {
  const { dataRoot, stateDir, confinement, layout } = deps;
  const fail = (why: string) => {
    throw new PathError(`volume "${name}": ${real} ${why}; choose another path`);
  };
  if (isInside(dataRoot, real)) fail("is or contains hostvol's data root");
  if (isInside(stateDir, real) || (isInside(real, stateDir) && !isInside(real, dataRoot))) {
    fail("is or overlaps hostvol's state directory");
  }
  if (isInside(real, layout.mountsDir) || isInside(layout.mountsDir, real)) fail("overlaps hostvol's mount directory");
  if (options.onRemove === 'delete' && confinement.isRoot(real)) {
    fail('is an allowed root, which onremove=delete would erase');
  }
  const other = volumes.overlapping(real);
  if (other) fail(`is or nests with the directory of volume "${other.name}" (${other.path})`);
}

/** Makes the directory and applies ownership, mode and label; an existing directory is put back on failure. */
export async function prepareDirectory(v: Volume, labeler: Labeler): Promise<void> {
  const { uid, gid, mode, label } = v.options;
  if (v.createdBy === 'hostvol') await makeDirs(v.path, 0o755);
  const before = v.createdBy === 'existing' ? await fs.promises.stat(v.path) : undefined;
  try {
    // A directory hostvol made gets the options; an existing one only what was explicitly given.
    if (uid !== undefined || gid !== undefined) await fs.promises.chown(v.path, uid ?? -1, gid ?? -1);
    // chmod after mkdir, so the umask cannot narrow the mode the operator asked for.
    if (mode !== undefined) await fs.promises.chmod(v.path, mode);
    if (label) await labeler.relabel(v.path);
  } catch (err) {
    if (before) {
      await fs.promises.chown(v.path, before.uid, before.gid).catch(() => undefined);
      await fs.promises.chmod(v.path, before.mode & 0o7777).catch(() => undefined);
    }
    throw err;
  }
}

/** Before every Mount: the directory must still exist and still be itself; relabel before the first. */
export async function checkDirectory(v: Volume, first: boolean, labeler: Labeler): Promise<void> {
  const st = await fs.promises.stat(v.path).catch(() => undefined);
  if (!st?.isDirectory()) {
    throw new PathError(
      `volume "${v.name}": its directory ${v.path} no longer exists (removed outside hostvol?); ` +
        'recreate the directory, or remove the volume',
    );
  }
  // A directory (or parent) swapped for a symlink since Create would hand dockerd a path outside.
  const real = await fs.promises.realpath(v.path);
  if (real !== v.path) {
    throw new PathError(
      `volume "${v.name}": its directory ${v.path} now leads to ${real} through a symbolic link; ` +
        'put the directory back, or remove the volume',
    );
  }
  if (first && v.options.label) await labeler.relabel(v.path);
}
