// Start-up: load the store into memory and make the world match it again after a crash, a plugin
// restart or a reboot: finish or undo half-done work, drop leases of a previous boot, fix mounts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { prepareDirectory } from './directory';
import type { Driver } from './driver';
import { describe } from '../errors';
import type { LeaseRecord } from '../store/sqlite';
import * as vol from './volume';

export async function recover(driver: Driver): Promise<void> {
  const { store, log, bootId, layout, mounter } = driver.deps;

  // After a reboot no container can still hold a mount; those leases would block Remove forever.
  const dropped = store.dropLeasesFromOtherBoots(bootId);
  if (dropped > 0) log.info({ dropped }, 'dropped mount leases from a previous boot');

  const leases = new Map<string, LeaseRecord[]>();
  for (const l of store.leases()) leases.set(l.volume, [...(leases.get(l.volume) ?? []), l]);
  const unfinished = [];
  for (const rec of store.volumes()) {
    const v = vol.fromRecord(rec, leases.get(rec.name) ?? []);
    driver.volumes.set(v.name, v);
    if (v.state !== 'ready') unfinished.push(v);
  }
  for (const v of unfinished) {
    if (v.state === 'creating') {
      await finishCreate(driver, v);
      continue;
    }
    try {
      log.warn({ volume: v.name }, 'finishing a remove that was cut short');
      await driver.discard(v);
    } catch (err) {
      log.error({ volume: v.name, err: describe(err) }, 'could not finish removing; the volume is kept');
      store.setState(v.name, 'ready');
      v.state = 'ready';
    }
  }

  // Leases from before dockerd's last Activate may be left by containers that died with it.
  driver.sweepStale();

  // Bind mounts: exactly one per volume that needs one and has active leases.
  const wanted = new Map<string, vol.Volume>();
  for (const v of driver.volumes.values()) {
    if (v.leases.size > 0 && vol.needsBind(v, layout)) wanted.set(vol.bindTarget(v, layout), v);
  }
  const mounted = new Set(mounter.mountsUnder(layout.mountsDir));
  for (const target of mounted) {
    if (wanted.has(target)) continue;
    log.info({ target }, 'removing a stale bind mount');
    await mounter.release(target).catch((err) => log.error({ target, err: describe(err) }, 'could not remove stale bind mount'));
  }
  for (const [target, v] of wanted) {
    if (mounted.has(target)) continue;
    log.warn({ volume: v.name, target }, 're-creating a bind mount that is gone while leases are active');
    await mounter.bind(v.path, target, v.options.readOnly).catch((err) =>
      log.error({ volume: v.name, err: describe(err) }, 'could not re-create bind mount'),
    );
  }
  // Empty mount directories left by a crash between unmount and rmdir.
  for (const entry of safeReaddir(layout.mountsDir)) {
    const target = path.join(layout.mountsDir, entry);
    if (!wanted.has(target) && !mounted.has(target)) rmdirQuietly(target);
  }
}

/**
 * A create cut short: a directory hostvol made is finished (the create may have been answered before
 * its 'ready' mark reached the disk); anything else, or a failure to finish, is undone.
 */
async function finishCreate(driver: Driver, v: vol.Volume): Promise<void> {
  const { log, store, labeler } = driver.deps;
  if (v.createdBy === 'hostvol' && fs.statSync(v.path, { throwIfNoEntry: false })?.isDirectory()) {
    try {
      await prepareDirectory(v, labeler);
      store.setState(v.name, 'ready');
      v.state = 'ready';
      log.warn({ volume: v.name }, 'finished a create that was cut short');
      return;
    } catch (err) {
      log.error({ volume: v.name, err: describe(err) }, 'could not finish a create that was cut short');
    }
  }
  log.warn({ volume: v.name }, 'undoing a create that was cut short');
  await driver.undoCreate(v);
}

/** Only ever removes an empty directory: anything else in the mount directory is left for a person. */
function rmdirQuietly(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // not empty or already gone
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
