// Mount leases as an operator sees them, and releasing them by hand: the lease a lost Unmount left
// behind no longer has to be waited out. A release goes through the volume's lock and is durable in
// the store before it is answered; one whose mount is still visible in some container is refused
// unless forced, since dropping it would let Remove delete data a container still writes to.
import { ConflictError, HostvolError, InvalidRequestError, describe } from '../errors';
import type { Driver } from './driver';
import type { Volume } from './volume';

export interface LeaseView {
  volume: string;
  /** The node that holds it (its --node-name, default its hostname). */
  node: string;
  id: string;
  /** How many times dockerd mounted this ID without unmounting it (docker cp mounts one twice). */
  count: number;
  /** The dockerd generation (one per /Plugin.Activate) that recorded it. */
  generation: number;
  /**
   * Recorded by an earlier dockerd or hostvol process: its Unmount may have been lost. null for
   * another node's lease: only that node knows its dockerd's generation.
   */
  stale: boolean | null;
}

/** true: some container's mount namespace has the volume mounted; false: none has; null: hostvol cannot tell from here. */
export type Visibility = boolean | null;

export function leasesOf(driver: Driver, v: Volume): LeaseView[] {
  const stale = new Set(driver.stale.ids(v));
  const node = driver.deps.store.node;
  return [...v.leases].map(([id, l]) => ({ volume: v.name, node, id, count: l.count, generation: l.generation, stale: stale.has(id) }));
}

/** Whether a container anywhere has the volume's directory mounted (read from /proc, off the event loop). */
export async function mountVisible(driver: Driver, v: Volume): Promise<Visibility> {
  return (await driver.deps.inUse(v.path)) ?? null;
}

export interface ReleaseRequest {
  /** One mount ID, or every stale lease of the volume. */
  id?: string;
  stale?: boolean;
  /** Release even when a container still has the volume mounted, or when hostvol cannot tell. */
  force?: boolean;
}

export interface ReleaseResult {
  volume: string;
  released: string[];
  mountVisible: Visibility;
}

export function release(driver: Driver, name: string, req: ReleaseRequest): Promise<ReleaseResult> {
  if ((req.id === undefined) === !req.stale) {
    throw new InvalidRequestError(`release of volume "${name}": give either a lease id (--id ID) or --stale, not both or neither`);
  }
  return driver.exclusive(name, async (v) => {
    let ids: string[];
    if (req.id !== undefined) {
      if (!v.leases.has(req.id)) throw await notHeldHere(driver, name, req.id);
      ids = [req.id];
    } else {
      ids = driver.stale.ids(v);
    }
    if (ids.length === 0) return { volume: name, released: [], mountVisible: null };
    const visible = await mountVisible(driver, v);
    if (visible !== false && !req.force) {
      const why = visible
        ? 'a container still has the volume mounted'
        : 'hostvol cannot see the containers\' mounts from here (no dockerd process visible), so it cannot tell whether one still uses it';
      throw new ConflictError(
        `volume "${name}": lease(s) ${ids.join(', ')} not released: ${why}; stop the container first, or pass --force if you know none uses it`,
      );
    }
    await driver.stale.drop(v, ids, req.force ? 'released by hand with --force' : 'released by hand; no container has the volume mounted');
    if (v.leases.size === 0) await driver.releaseBind(v);
    return { volume: name, released: ids, mountVisible: visible };
  });
}

/**
 * Why this node cannot release lease `id` of volume `name`: another node holds it, or no node does. A
 * release is of this node's leases only: whether a container still has the volume mounted can be seen
 * only on the node whose containers they are, and the bind mount it may undo is that node's.
 */
async function notHeldHere(driver: Driver, name: string, id: string): Promise<HostvolError> {
  const here = driver.deps.store.node;
  let holders: string[] = [];
  let unknown = '';
  try {
    holders = [...new Set((await driver.deps.store.leases(name)).filter((l) => l.id === id && l.node !== here).map((l) => l.node))].sort();
  } catch (err) {
    unknown = ` on this node (${here}); the other nodes' leases could not be read: ${describe(err)}`;
  }
  if (holders.length === 0) return new InvalidRequestError(`volume "${name}" holds no lease "${id}"${unknown}; see hostvol leases ${name}`);
  return new ConflictError(
    `volume "${name}": lease "${id}" is held by node ${holders.join(', ')}, not by this node (${here}); a lease is released on the node ` +
      `that holds it (only there can hostvol see whether a container still uses it): run hostvol release ${name} --id ${id} on ${holders.join(', ')}. ` +
      'A node that is gone loses its leases by itself once its etcd lease expires (--lease-ttl)',
  );
}
