// Start-up: load the store into memory and make the world match it again after a crash, a power cut,
// a plugin restart or a reboot: finish or undo half-done work, drop leases of a previous boot, fix mounts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe } from '../errors';
import type { LeaseRecord, Snapshot } from '../store/store';
import { openDirectory } from './directory';
import type { Driver } from './driver';
import { discard, undoCreate } from './teardown';
import * as vol from './volume';

export async function recover(driver: Driver, snapshot: Snapshot): Promise<void> {
  const { store, log, bootId } = driver.deps;

  // After a reboot no container can still hold a mount; those leases would block Remove forever.
  const dropped = await store.dropLeasesFromOtherBoots(bootId);
  if (dropped > 0) log.info({ dropped }, 'dropped mount leases from a previous boot');

  const leases = new Map<string, LeaseRecord[]>();
  for (const l of snapshot.leases) {
    if (l.bootId === bootId) leases.set(l.volume, [...(leases.get(l.volume) ?? []), l]);
  }
  const unfinished = [];
  for (const rec of snapshot.volumes) {
    const v = vol.fromRecord(rec, leases.get(rec.name) ?? []);
    driver.volumes.set(v.name, v);
    if (v.state !== 'ready') unfinished.push(v);
  }
  for (const v of unfinished) {
    if (v.state === 'creating') {
      await undoCutShort(driver, v);
      continue;
    }
    log.warn({ volume: v.name }, 'finishing a remove that was cut short');
    await discard(v, driver.deps, driver.volumes).catch((err) => log.error({ volume: v.name, err: describe(err) }, 'could not finish removing; remove it again'));
  }
  await reconcileBinds(driver);
  // Leases from before dockerd's last Activate, or from before this process, may have lost their Unmount.
  driver.sweepStale();
}

/** Bind mounts: exactly one per volume with active leases, none for the others. */
async function reconcileBinds(driver: Driver): Promise<void> {
  const { log, layout, mounter, confinement } = driver.deps;
  const wanted = new Map<string, vol.Volume>();
  for (const v of driver.volumes.values()) if (v.leases.size > 0) wanted.set(vol.bindTarget(v, layout), v);
  const mounted = new Set(await mounter.mountsUnder(layout.mountsDir));
  for (const target of mounted) {
    if (wanted.has(target)) continue;
    log.info({ target }, 'removing a stale bind mount');
    await mounter.release(target).catch((err) => log.error({ target, err: describe(err) }, 'could not remove stale bind mount'));
  }
  for (const [target, v] of wanted) {
    if (mounted.has(target)) continue;
    log.warn({ volume: v.name, target }, 're-creating a bind mount that is gone while leases are active');
    try {
      const dir = await openDirectory(v, confinement);
      await mounter.bind(dir.fd, target, v.options.readOnly).finally(() => dir.close());
    } catch (err) {
      log.error({ volume: v.name, err: describe(err) }, 'could not re-create bind mount');
    }
  }
  // Empty mount directories left by a crash between unmount and rmdir; anything else is left for a person.
  for (const entry of await fs.promises.readdir(layout.mountsDir).catch(() => [] as string[])) {
    const target = path.join(layout.mountsDir, entry);
    if (!wanted.has(target) && !mounted.has(target)) await fs.promises.rmdir(target).catch(() => undefined);
  }
}

/**
 * A create cut short. Create answers only after its 'ready' mark is durable, so a 'creating' record
 * was never acknowledged: undo it (what hostvol made goes; a directory that was there stays).
 */
async function undoCutShort(driver: Driver, v: vol.Volume): Promise<void> {
  driver.deps.log.warn({ volume: v.name }, 'undoing a create that was cut short');
  await undoCreate(v, driver.deps, driver.volumes);
}
