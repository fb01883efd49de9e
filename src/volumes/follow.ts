// Keeps the driver's table current with what other nodes do to the volume records (a cluster
// store's watch; the SQLite store never reports anything), so Get, List and Path keep answering
// from memory and stay right. Each change is applied under the volume's lock: it waits for an
// operation of this node on the same name, and the store reports only changes newer than that.
import { describe } from '../errors';
import type { RemoteChange } from '../store/store';
import type { Driver } from './driver';
import * as vol from './volume';

/** Starts applying remote changes; returns the function that stops it. */
export function follow(driver: Driver): () => void {
  const { store, log } = driver.deps;
  return store.watch((change) => {
    driver.withLock(change.name, () => apply(driver, change)).catch((err) => log.error({ volume: change.name, err: describe(err) }, 'could not apply a change made by another node'));
  });
}

function apply(driver: Driver, { name, record, current }: RemoteChange): void {
  const { log } = driver.deps;
  if (!current()) return; // this node changed the volume since (e.g. removed it): that is newer
  const local = driver.volumes.get(name);
  // Another node's create in progress is not a volume yet; it is reported again once ready.
  if (!record || record.state === 'creating') {
    if (!local) return;
    if (local.leases.size > 0) {
      // Only possible when this node's leases expired while it was cut off from etcd.
      log.error({ volume: name, mounts: local.leases.size }, 'another node removed a volume that is still mounted on this node; stop the containers using it');
    }
    driver.volumes.delete(name);
    log.info({ volume: name }, 'volume removed by another node');
    return;
  }
  if (!local) {
    driver.volumes.set(name, vol.fromRecord(record, []));
    log.info({ volume: name, state: record.state }, 'volume created by another node');
    return;
  }
  // Name, path and options never change; only the state does (a remove in progress elsewhere).
  if (local.state !== record.state) {
    local.state = record.state;
    driver.volumes.touch();
  }
}

/**
 * Before a Mount, Unmount or Remove of a name this node's table lacks: the record is read from the
 * store, as the watch may not have brought it yet (it lags while it reconnects after an etcd member
 * died), and applied as a remote change would be. A store without other writers has nothing to add.
 */
export async function catchUp(driver: Driver, name: string): Promise<void> {
  if (driver.volumes.get(name)) return;
  vol.checkName(name);
  const record = await driver.deps.store.lookup(name);
  if (!record) return;
  await driver.withLock(name, () => {
    if (!driver.volumes.get(name)) apply(driver, { name, record, current: () => true });
  });
}
