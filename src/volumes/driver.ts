// The volume lifecycle: create, remove, mount, unmount, get, list. Plain TypeScript: it knows
// volumes, options, paths and leases, and a store interface; the HTTP layer decodes requests and
// encodes what it returns. Every change is durable in the store before the call resolves.
import type { Logger } from 'pino';
import { ConflictError, HostvolError, NotFoundError, PathError, describe } from '../errors';
import type { Labeler } from '../host/labels';
import type { Mounter } from '../host/mounter';
import type { Store } from '../store/store';
import { bindDirectory, checkPlacement, locate, prepareDirectory, type Placement } from './directory';
import { catchUp } from './follow';
import { copyFrom } from './from';
import { discard, undoCreate } from './teardown';
import { KeyedLock } from './keyed-lock';
import { parseOptions, sameOptions, type VolumeOptions } from './options';
import { StaleLeases, type StaleDeps, type SweepTarget } from './stale';
import * as vol from './volume';
import type { Volume } from './volume';
import { VolumeTable } from './volume-table';
import { VolumeViews, type VolumeView } from './view';

export interface DriverDeps extends Placement, StaleDeps {
  store: Store;
  mounter: Mounter;
  labeler: Labeler;
  log: Logger;
  layout: vol.Layout;
}

export type { VolumeView } from './view';

export class Driver {
  readonly volumes = new VolumeTable();
  private readonly lock = new KeyedLock();
  readonly stale: StaleLeases;
  private readonly views: VolumeViews;
  private readonly sweepTarget: SweepTarget = {
    volumes: () => this.volumes.values(),
    locked: (v, fn) => this.lock.run(v.name, () => (this.volumes.get(v.name) === v ? fn() : Promise.resolve(undefined))),
    released: (v) => this.releaseBind(v),
  };

  constructor(readonly deps: DriverDeps, generation: number) {
    this.stale = new StaleLeases(deps, generation);
    this.views = new VolumeViews(deps);
  }

  get(name: string): VolumeView {
    return this.views.of(this.visible(name));
  }

  list(): { name: string; mountpoint: string }[] {
    const out = [];
    for (const v of this.volumes.values()) {
      if (v.state !== 'creating') out.push({ name: v.name, mountpoint: vol.mountpoint(v, this.deps.layout) });
    }
    return out;
  }

  /** What Get shows as the mountpoint, mounted or not: dockerd never needs Path to find a mount. */
  path(name: string): string {
    return vol.mountpoint(this.visible(name), this.deps.layout);
  }

  create(name: string, rawOpts: Record<string, string> | null | undefined): Promise<void> {
    vol.checkName(name);
    const options = parseOptions(name, rawOpts);
    return this.lock.run(name, async () => {
      const existing = this.volumes.get(name);
      // Create must be idempotent: dockerd and API clients repeat it, and in a cluster every node
      // that runs a task creates the volume (the store then hands back the record another node made).
      if (existing) return sameAs(existing, options);
      const v = await this.reserve(name, options);
      if (v.state !== 'creating') return sameAs(v, options);
      try {
        await prepareDirectory(v, this.deps.confinement, this.deps.labeler);
        if (options.from !== undefined) await copyFrom(v, this.volumes.get(options.from), this.deps);
        await this.deps.store.setState(name, 'ready');
        v.state = 'ready';
        this.volumes.touch();
      } catch (err) {
        await undoCreate(v, this.deps, this.volumes);
        const msg = describe(err);
        throw err instanceof HostvolError && msg.startsWith(`volume "${name}"`) ? err : new HostvolError(`volume "${name}": create failed: ${msg}`);
      }
      this.deps.log.info({ volume: name, path: v.path, options }, 'volume created');
    });
  }

  /**
   * dockerd activates a legacy plugin once per daemon lifetime, so an Activate means a new dockerd:
   * mounts recorded before it may belong to containers that daemon killed without an Unmount.
   */
  async activated(): Promise<void> {
    const next = this.stale.generation + 1;
    await this.deps.store.setGeneration(next);
    this.stale.generation = next;
    this.deps.log.info({ generation: next }, 'activated by dockerd');
    this.stale.sweep(this.sweepTarget, true);
  }

  /** Starts reclaiming leases left by an earlier dockerd or hostvol (called once after recovery). */
  sweepStale(): void {
    this.stale.sweep(this.sweepTarget);
  }

  async mount(name: string, id: string): Promise<string> {
    await catchUp(this, name);
    return this.lock.run(name, async () => {
      const v = this.visible(name);
      const { layout, store, bootId } = this.deps;
      if (v.state !== 'ready') throw new ConflictError(`volume "${name}" is being removed; remove it again to finish`);
      const held = v.leases.get(id);
      const generation = this.stale.generation;
      // The same ID mounted again by the same dockerd is docker cp: count it (also across our own
      // restarts). From an earlier dockerd it is a container restored after a crash, whose old mount
      // was never unmounted: adopt it, once.
      const count = held && held.generation === generation ? held.count + 1 : 1;
      if (held && count === 1) this.deps.log.warn({ volume: name, id, was: held.count }, 'adopting a mount ID from before dockerd restarted');
      if (!held && v.options.label === 'Z' && v.leases.size > 0) await this.stale.reclaim(v, this.sweepTarget);
      if (!held && v.options.label === 'Z' && v.leases.size > 0) {
        throw new ConflictError(
          `volume "${name}" is single-writer (option Z) and is already mounted by another container; ` +
            'stop that container first, or use a volume without Z',
        );
      }
      const first = v.leases.size === 0;
      const target = vol.bindTarget(v, layout);
      const exclusive = !held && v.options.label === 'Z';
      const lease = { volume: name, id, count, bootId, generation };
      const giveBack = () => {
        const back = held ? { count: held.count, generation: held.generation } : { count: 0, generation };
        return store.setLease({ ...lease, ...back }).catch((e) =>
          this.deps.log.error({ volume: name, id, err: describe(e) }, 'could not give back the lease of a failed mount; Remove drops it'),
        );
      };
      // Where the store can refuse (Z; in a cluster, other nodes' mounts and removes count), it rules
      // first, in one transaction, so a refused Mount touches nothing. A local store has no other node
      // to refuse a lease of a volume this table holds 'ready' under its lock, so there the lease and
      // the bind go side by side: a Mount waits for the longer of its commit and its bind, not their
      // sum. Either failing undoes the other; a crash between them leaves a lease without its bind
      // (start-up re-creates it) or a bind without a lease (start-up removes it), and the Mount was
      // never answered.
      const recording = store.setLease(lease, { exclusive });
      if (exclusive || store.scope !== 'local') await recording;
      const [recorded, bound] = await Promise.allSettled([recording, this.bindIfNeeded(v, target, first)]);
      if (recorded.status === 'rejected') {
        if (bound.status === 'fulfilled' && bound.value && first) await this.releaseBind(v);
        throw recorded.reason;
      }
      if (bound.status === 'rejected') {
        await giveBack();
        throw bound.reason;
      }
      v.leases.set(id, { count, generation, inherited: false });
      this.deps.log.info({ volume: name, id, count, mounts: v.leases.size }, 'volume mounted');
      return target;
    });
  }

  async unmount(name: string, id: string): Promise<void> {
    await catchUp(this, name);
    return this.lock.run(name, async () => {
      const v = this.visible(name);
      const held = v.leases.get(id);
      if (held === undefined) {
        // dockerd retries Unmounts it lost track of; an ID we do not hold is already released.
        this.deps.log.info({ volume: name, id }, 'unmount of a mount ID that is not active; nothing to do');
        return;
      }
      const count = held.count - 1;
      const recorded = this.deps.store.setLease({ volume: name, id, count, bootId: this.deps.bootId, generation: held.generation });
      // The last lease going: the bind is removed while the release commits, so an Unmount waits for
      // the longer of the two, not their sum. The lease is released even if the bind mount cannot be
      // removed (releaseBind logs it; the next Mount or start retries); a commit that fails leaves the
      // lease held, and the next Mount of it binds again (it checks the mount table when not first).
      const last = count === 0 && v.leases.size === 1;
      const released = last ? this.releaseBind(v) : undefined;
      try {
        await recorded;
      } finally {
        await released;
      }
      if (count > 0) v.leases.set(id, { ...held, count });
      else v.leases.delete(id);
      this.deps.log.info({ volume: name, id, count, mounts: v.leases.size }, 'volume unmounted');
    });
  }

  async remove(name: string): Promise<void> {
    await catchUp(this, name);
    return this.lock.run(name, async () => {
      const v = this.visible(name);
      // dockerd sends Remove only when none of its containers references the volume (also with -f),
      // so a lease left is one whose Unmount was lost while hostvol was down or disabled. What still
      // makes the volume busy is a container of another engine, or one dockerd forgot, that has it
      // mounted. A managed plugin sees them through the host's PID namespace (pidhost); a process that
      // cannot see containers at all trusts dockerd.
      if (v.leases.size > 0 && (await this.deps.inUse(v.path)) === true) {
        throw new ConflictError(
          `volume "${name}" is in use by ${v.leases.size} mount(s) and a container still has it mounted; stop the containers using it first`,
        );
      }
      // Durable before any lease is dropped: a Remove cut short then either never happened or is
      // finished at the next start, never half done (some leases gone, the volume still there).
      await this.deps.store.setState(name, 'removing');
      v.state = 'removing';
      if (v.leases.size > 0) {
        await this.stale.drop(v, [...v.leases.keys()], 'dockerd asked to remove the volume and no container has it mounted');
      }
      await discard(v, this.deps, this.volumes);
      this.deps.log.info({ volume: name, path: v.path, data: vol.onRemove(v) === 'delete' ? 'deleted' : 'kept' }, 'volume removed');
    });
  }

  /** Waits for every operation in flight and stops background work (used at shutdown). */
  idle(): Promise<void> {
    this.stale.stop();
    return this.lock.idle();
  }

  /** Runs `fn` on volume `name` under its lock, as every change to it runs (admin operations use it). */
  exclusive<T>(name: string, fn: (v: Volume) => Promise<T>): Promise<T> {
    return this.lock.run(name, () => fn(this.visible(name)));
  }

  private visible(name: string): Volume {
    vol.checkName(name);
    const v = this.volumes.get(name);
    if (!v || v.state === 'creating') throw new NotFoundError(name);
    return v;
  }

  /**
   * Decides where the volume lives and records the intent durably before anything is made. The
   * placement is checked again, synchronously, right before the volume enters the table: two
   * concurrent Creates of different names cannot both claim one directory.
   */
  private async reserve(name: string, options: VolumeOptions): Promise<Volume> {
    const { real, exists, made } = await locate(this.deps, this.volumes, name, options);
    checkPlacement(this.deps, this.volumes, name, real, options);
    const v: Volume = {
      name,
      path: real,
      options,
      createdBy: exists ? 'existing' : 'hostvol',
      createdAt: new Date().toISOString(),
      state: 'creating',
      made,
      leases: new Map(),
      unbound: true,
    };
    this.volumes.set(name, v);
    let theirs;
    try {
      theirs = await this.deps.store.insertVolume(vol.toRecord(v));
    } catch (err) {
      this.volumes.delete(name);
      throw err;
    }
    if (!theirs) return v;
    const other = vol.fromRecord(theirs, []);
    this.volumes.set(name, other);
    return other;
  }

  /** Runs `fn` under the volume's lock (changes made by other nodes are applied so: follow.ts). */
  withLock<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    return this.lock.run(name, fn);
  }

  /**
   * Binds the volume at `target` for a first lease, or when the bind was lost behind our back (a
   * crash, an operator's umount); true when it bound now. Failures name the volume and keep the errno.
   */
  private async bindIfNeeded(v: Volume, target: string, first: boolean): Promise<boolean> {
    if (!first && (await this.deps.mounter.isMountPoint(target))) return false;
    v.unbound = false;
    const labeler = first && v.options.label && this.deps.labeler.enabled ? this.deps.labeler : undefined;
    await bindDirectory(v, this.deps.confinement, this.deps.mounter, target, labeler).catch((err) => {
      // The errno stays in the message (EPERM, ENOSPC, …); the volume's name goes in front.
      throw err instanceof PathError ? err : new HostvolError(`volume "${v.name}": mount failed: ${describe(err)}`);
    });
    return true;
  }

  /** Removes the volume's bind mount once it has no lease left (a failure is logged; the next Mount retries). */
  async releaseBind(v: Volume): Promise<void> {
    const target = vol.bindTarget(v, this.deps.layout);
    try {
      await this.deps.mounter.release(target);
      v.unbound = true;
    } catch (err) {
      this.deps.log.error({ volume: v.name, target, err: describe(err) }, 'could not remove bind mount; will retry');
    }
  }
}

/** Create of a name that exists: done when the options match, the same Err on every node otherwise. */
function sameAs(existing: Volume, options: VolumeOptions): void {
  if (sameOptions(existing.options, options)) return;
  throw new ConflictError(
    `volume "${existing.name}" already exists with options ${JSON.stringify(existing.options)}; ` +
      'remove it first, or create it again with the same options',
  );
}
