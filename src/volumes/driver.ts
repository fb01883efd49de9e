// The volume lifecycle: create, remove, mount, unmount, get, list. Plain TypeScript: it knows
// volumes, options, paths and leases; the HTTP layer decodes requests and encodes what it returns.
import type { Logger } from 'pino';
import { checkDirectory, locate, prepareDirectory } from './directory';
import { ConflictError, HostvolError, NotFoundError, describe } from '../errors';
import { toHost, type HostPaths } from './hostpaths';
import { mountedElsewhere } from '../host/inuse';
import { KeyedLock } from './keyed-lock';
import type { Labeler } from '../host/labels';
import type { Mounter } from '../host/mounter';
import { parseOptions, sameOptions, type VolumeOptions } from './options';
import { Confinement, firstMissing, removeEmptyParents, removeTree } from '../host/paths';
import type { VolumeInfo } from '../plugin/protocol';
import type { Store } from '../store/sqlite';
import * as vol from './volume';
import type { Volume } from './volume';
import { VolumeTable } from './volume-table';

export interface DriverDeps {
  store: Store;
  mounter: Mounter;
  labeler: Labeler;
  log: Logger;
  /** Real path of the default home of volumes. */
  dataRoot: string;
  stateDir: string;
  /** Where `path` may point; includes the data root. */
  confinement: Confinement;
  layout: vol.Layout;
  bootId: string;
  /** Managed mode: the host directory `-o path=` refers to, and where the plugin sees it. */
  hostPaths?: HostPaths;
}

export class Driver {
  readonly volumes = new VolumeTable();
  private readonly lock = new KeyedLock();
  /** Which dockerd we are serving: advanced by every /Plugin.Activate, kept across our own restarts. */
  private generation = 0;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(readonly deps: DriverDeps) {
    this.generation = deps.store.generation();
  }

  get(name: string): VolumeInfo {
    const v = this.visible(name);
    const { layout, hostPaths } = this.deps;
    const Status = { ...vol.status(v), path: toHost(hostPaths, v.path) };
    return { Name: v.name, Mountpoint: vol.mountpoint(v, layout), CreatedAt: v.createdAt, Status };
  }

  list(): { Name: string; Mountpoint: string }[] {
    const out = [];
    for (const v of this.volumes.values()) {
      if (v.state !== 'creating') out.push({ Name: v.name, Mountpoint: vol.mountpoint(v, this.deps.layout) });
    }
    return out;
  }

  /** The current mountpoint: the bind mount only while it exists, the data directory otherwise. */
  path(name: string): string {
    const v = this.visible(name);
    if (!vol.needsBind(v, this.deps.layout)) return v.path;
    return v.leases.size > 0 ? vol.bindTarget(v, this.deps.layout) : '';
  }

  create(name: string, rawOpts: Record<string, string> | null | undefined): Promise<void> {
    vol.checkName(name);
    const options = parseOptions(name, rawOpts);
    return this.lock.run(name, async () => {
      const existing = this.volumes.get(name);
      if (existing) {
        // Create must be idempotent: dockerd and API clients repeat it.
        if (sameOptions(existing.options, options)) return;
        throw new ConflictError(
          `volume "${name}" already exists with options ${JSON.stringify(existing.options)}; ` +
            'remove it first, or create it again with the same options',
        );
      }
      const v = this.reserve(name, options);
      try {
        await prepareDirectory(v, this.deps.labeler);
        // The intent row is already on disk and recovery rolls a made directory forward, so this mark
        // needs no fsync of its own; a directory that existed before keeps the strict order.
        this.deps.store.setState(name, 'ready', v.createdBy === 'existing');
        v.state = 'ready';
      } catch (err) {
        await this.undoCreate(v);
        throw err instanceof HostvolError ? err : new HostvolError(`volume "${name}": create failed: ${describe(err)}`);
      }
      this.deps.log.info({ volume: name, path: v.path, options }, 'volume created');
    });
  }

  /**
   * dockerd activates a legacy plugin once per daemon lifetime, so an Activate means a new dockerd:
   * mounts recorded before it may belong to containers that daemon killed without an Unmount.
   */
  activated(): void {
    const next = this.generation + 1;
    this.deps.store.setGeneration(next);
    this.generation = next;
    this.deps.log.info({ generation: next }, 'activated by dockerd');
    this.sweepStale();
  }

  /** Drops stale leases (see reclaimStale) in the background, every few seconds while any remain. */
  sweepStale(everyMs = 5_000): void {
    if (this.sweeper) return;
    const pass = async () => {
      this.sweeper = undefined;
      let left = 0;
      for (const v of [...this.volumes.values()]) {
        if (this.staleIds(v).length === 0) continue;
        const known = await this.lock.run(v.name, () => (this.volumes.get(v.name) === v ? this.reclaimStale(v) : true));
        if (!known) return; // this process cannot see containers: nothing to gain by asking again
        if (this.staleIds(v).length > 0) left++;
      }
      if (left > 0) this.sweepStale(everyMs);
    };
    this.sweeper = setTimeout(() => void pass().catch((err) => this.deps.log.error({ err: describe(err) }, 'stale mount sweep failed')), everyMs);
    this.sweeper.unref();
  }

  mount(name: string, id: string): Promise<string> {
    return this.lock.run(name, async () => {
      const v = this.visible(name);
      const { layout, store, bootId } = this.deps;
      const held = v.leases.get(id);
      // The same ID mounted again by the same dockerd is docker cp: count it. From an earlier dockerd it
      // is a container restored after a crash, whose old mount was never unmounted: adopt it, once.
      const count = held && held.generation === this.generation ? held.count + 1 : 1;
      if (held && count === 1) this.deps.log.warn({ volume: name, id, was: held.count }, 'adopting a mount ID from before dockerd restarted');
      if (!held && v.options.label === 'Z' && v.leases.size > 0) await this.reclaimStale(v);
      if (!held && v.options.label === 'Z' && v.leases.size > 0) {
        throw new ConflictError(
          `volume "${name}" is single-writer (option Z) and is already mounted by another container; ` +
            'stop that container first, or use a volume without Z',
        );
      }
      const first = v.leases.size === 0;
      await checkDirectory(v, first, this.deps.labeler);
      // Also re-creates a bind mount lost behind our back (crash, dockerd's shutdown unmount).
      if (vol.needsBind(v, layout) && !this.deps.mounter.isMountPoint(vol.bindTarget(v, layout))) {
        await this.deps.mounter.bind(v.path, vol.bindTarget(v, layout), v.options.readOnly);
      }
      try {
        store.setLease(name, id, count, bootId, this.generation);
      } catch (err) {
        if (first) await this.releaseBind(v);
        throw err;
      }
      v.leases.set(id, { count, generation: this.generation });
      this.deps.log.info({ volume: name, id, count, mounts: v.leases.size }, 'volume mounted');
      return vol.mountpoint(v, layout);
    });
  }

  unmount(name: string, id: string): Promise<void> {
    return this.lock.run(name, async () => {
      const v = this.visible(name);
      const held = v.leases.get(id);
      if (held === undefined) {
        // dockerd retries Unmounts it lost track of; an ID we do not hold is already released.
        this.deps.log.info({ volume: name, id }, 'unmount of a mount ID that is not active; nothing to do');
        return;
      }
      const count = held.count - 1;
      this.deps.store.setLease(name, id, count, this.deps.bootId, held.generation);
      if (count > 0) v.leases.set(id, { ...held, count });
      else v.leases.delete(id);
      this.deps.log.info({ volume: name, id, count, mounts: v.leases.size }, 'volume unmounted');
      // The lease is released even if the bind mount cannot be removed; the next Mount or start retries.
      if (v.leases.size === 0) await this.releaseBind(v);
    });
  }

  remove(name: string): Promise<void> {
    return this.lock.run(name, async () => {
      const v = this.visible(name);
      const { store, log } = this.deps;
      await this.reclaimStale(v);
      // dockerd only guards its own containers; other hosts and lost references can still ask.
      if (v.leases.size > 0) {
        throw new ConflictError(
          `volume "${name}" is in use by ${v.leases.size} mount(s); stop the containers using it first`,
        );
      }
      // Made durable by the fsync of the record's deletion; a SIGKILL keeps it (it is in the page cache).
      store.setState(name, 'removing', false);
      v.state = 'removing';
      try {
        await this.discard(v);
      } catch (err) {
        v.state = 'ready';
        try {
          store.setState(name, 'ready');
        } catch (e) {
          log.error({ volume: name, err: describe(e) }, 'could not mark the volume ready again; the next start finishes the remove');
        }
        throw new HostvolError(`volume "${name}" was not removed: ${describe(err)}`);
      }
      log.info({ volume: name, path: v.path, data: vol.onRemove(v) === 'delete' ? 'deleted' : 'kept' }, 'volume removed');
    });
  }

  /** Waits for every operation in flight and stops background work (used at shutdown). */
  idle(): Promise<void> {
    clearTimeout(this.sweeper);
    return this.lock.idle();
  }

  /** Deletes what the volume owns (per onremove) and forgets it; also finishes a remove after a crash. */
  async discard(v: Volume): Promise<void> {
    if (vol.needsBind(v, this.deps.layout)) await this.deps.mounter.release(vol.bindTarget(v, this.deps.layout));
    if (vol.onRemove(v) === 'delete') {
      await removeTree(v.path, this.deps.confinement);
      // And the parents mkdir -p made for it, once nothing else is in them.
      if (v.made) removeEmptyParents(v.path, v.made, this.deps.confinement);
    }
    this.deps.store.deleteVolume(v.name);
    this.volumes.delete(v.name);
  }

  /** Undoes a create that failed part-way (or was cut short by a crash): no record, no half-made dir. */
  async undoCreate(v: Volume): Promise<void> {
    try {
      // Its own directory, then the parents it made while they are empty: a concurrent Create may
      // have put its volume into a parent this one made.
      if (v.made) {
        await removeTree(v.path, this.deps.confinement);
        removeEmptyParents(v.path, v.made, this.deps.confinement);
      }
    } catch (err) {
      this.deps.log.error({ volume: v.name, path: v.path, err: describe(err) }, 'could not remove a half-made volume directory');
    }
    // Forgotten even when the store cannot be written (disk full): a retried Create must not find a
    // half-made volume and call it done; the 'creating' row is replaced by it or undone at the next start.
    this.volumes.delete(v.name);
    try {
      this.deps.store.deleteVolume(v.name);
    } catch (err) {
      this.deps.log.error({ volume: v.name, err: describe(err) }, 'could not delete the record of an undone create; the next start does');
    }
  }

  private visible(name: string): Volume {
    vol.checkName(name);
    const v = this.volumes.get(name);
    if (!v || v.state === 'creating') throw new NotFoundError(name);
    return v;
  }

  /**
   * Decides where the volume lives and records the intent, synchronously, so that two concurrent
   * Creates of different names cannot both claim one directory.
   */
  private reserve(name: string, options: VolumeOptions): Volume {
    const { real, exists } = locate(this.deps, this.volumes, name, options);
    const v: Volume = {
      name,
      path: real,
      options,
      createdBy: exists ? 'existing' : 'hostvol',
      createdAt: new Date().toISOString(),
      state: 'creating',
      made: exists ? null : (firstMissing(real) ?? null),
      leases: new Map(),
    };
    this.deps.store.insertVolume(vol.toRecord(v));
    this.volumes.set(name, v);
    return v;
  }

  /** Mount IDs recorded before dockerd's last Activate. */
  private staleIds(v: Volume): string[] {
    return [...v.leases].filter(([, l]) => l.generation < this.generation).map(([id]) => id);
  }

  /**
   * A dockerd that was killed never unmounts the containers it had, and its successor unmounts only
   * those it restarts. Leases from such an earlier dockerd are dropped once no container in any mount
   * namespace still has the directory mounted (with --live-restore the containers do, and keep them).
   */
  private async reclaimStale(v: Volume): Promise<boolean> {
    const stale = this.staleIds(v);
    if (stale.length === 0) return true;
    const busy = mountedElsewhere(v.path);
    if (busy !== false) return busy === true;
    for (const id of stale) {
      this.deps.store.setLease(v.name, id, 0, this.deps.bootId, this.generation);
      v.leases.delete(id);
    }
    this.deps.log.warn({ volume: v.name, ids: stale }, 'dropped mounts left by a dockerd that died: no container has the volume mounted');
    if (v.leases.size === 0) await this.releaseBind(v);
    return true;
  }

  private async releaseBind(v: Volume): Promise<void> {
    if (!vol.needsBind(v, this.deps.layout)) return;
    const target = vol.bindTarget(v, this.deps.layout);
    try {
      await this.deps.mounter.release(target);
    } catch (err) {
      this.deps.log.error({ volume: v.name, target, err: describe(err) }, 'could not remove bind mount; will retry');
    }
  }
}
