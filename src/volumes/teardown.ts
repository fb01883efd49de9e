// The end of a volume: deleting what it owns and forgetting it (Remove, and a remove finished at
// start-up), or undoing a create that did not finish.
import type { Logger } from 'pino';
import { HostvolError, describe } from '../errors';
import type { Mounter } from '../host/mounter';
import type { Confinement } from '../host/paths';
import type { Store } from '../store/store';
import { deleteDirectory } from './directory';
import * as vol from './volume';
import type { Volume } from './volume';
import type { VolumeTable } from './volume-table';

export interface TeardownDeps {
  store: Store;
  mounter: Mounter;
  log: Logger;
  layout: vol.Layout;
  confinement: Confinement;
}

/**
 * Deletes what the volume owns (per onremove) and forgets it; also finishes a remove after a
 * crash. Its 'removing' mark is durable before anything is deleted. A delete that fails once it
 * has begun leaves the volume marked 'removing' (visible, not mountable): its data may be partly
 * gone, so it must not look whole again; running Remove again finishes it. One that fails before
 * (a mount inside, the bind busy) leaves the volume as it was.
 */
export async function discard(v: Volume, deps: TeardownDeps, volumes: VolumeTable): Promise<void> {
  let touched = false;
  try {
    // A volume never bound since it was made here (or released since) has no target to release.
    if (!v.unbound) await deps.mounter.release(vol.bindTarget(v, deps.layout));
    if (vol.onRemove(v) === 'delete') {
      // Checked before anything is deleted: a delete that stops half-way at a mount is worse than
      // none. An empty directory has nothing mounted inside, so deleteDirectory asks only for others.
      const noMountsInside = async () => {
        const inside = await deps.mounter.mountsUnder(v.path);
        if (inside.length > 0) throw new HostvolError(`${inside[inside.length - 1]} is mounted inside it; unmount it first`);
      };
      await deleteDirectory(v, deps.confinement, () => (touched = true), noMountsInside);
    }
  } catch (err) {
    if (!touched && v.state === 'removing') {
      await deps.store.setState(v.name, 'ready').then(
        () => (v.state = 'ready'),
        (e) => deps.log.error({ volume: v.name, err: describe(e) }, 'could not mark the volume ready again; the next start finishes the remove'),
      );
    }
    throw new HostvolError(`volume "${v.name}" was not removed: ${describe(err)}; fix that, then remove it again`);
  }
  await deps.store.deleteVolume(v.name);
  volumes.delete(v.name);
}

/** Undoes a create that failed part-way (or was cut short by a crash): no record, no half-made dir. */
export async function undoCreate(v: Volume, deps: TeardownDeps, volumes: VolumeTable): Promise<void> {
  try {
    if (v.createdBy === 'hostvol') await deleteDirectory(v, deps.confinement);
  } catch (err) {
    deps.log.error({ volume: v.name, path: v.path, err: describe(err) }, 'could not remove a half-made volume directory');
  }
  // Forgotten even when the store cannot be written (disk full): a retried Create must not find a
  // half-made volume and call it done; the 'creating' row is replaced by it or undone at the next start.
  volumes.delete(v.name);
  await deps.store.deleteVolume(v.name).catch((err) => {
    deps.log.error({ volume: v.name, err: describe(err) }, 'could not delete the record of an undone create; the next start does');
  });
}
