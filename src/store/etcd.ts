// The cluster store: volume records and mount leases in etcd v3 (layout: etcd-keys.ts), shared by
// every node. Each change is one transaction guarded by the revisions its decision was read at
// (mod_revision compares), so two nodes deciding at once cannot both win: the loser re-reads and
// decides again. What this node holds is also kept in memory (etcd-own-leases.ts), so that it can
// be put back after an outage.
import type { ICompare, IRequestOp, ITxnResponse } from 'etcd3';
import type { Logger } from 'pino';
import { ConflictError, HostvolError, describe } from '../errors';
import { Keys, decodeRecord, encodeRecord, plain, withState, type StoredLease } from './etcd-keys';
import { claimKey, claimReads, settleClaims, unclaimed } from './etcd-claims';
import { checkSharedDataRoot, publishNode } from './etcd-marker';
import { nodeIdentity, type Published } from './etcd-node';
import { absent, del, modIs, put, range, readLeases, readView, txn, type View } from './etcd-ops';
import { OwnLeases, encodeLease, type Held } from './etcd-own-leases';
import { EtcdSession, type EtcdConfig } from './etcd-session';
import { RecordFeed } from './etcd-watch';
import type { LeaseRecord, NodeLease, RecordState, RemoteChange, Snapshot, Store, StoreHealth, VolumeRecord } from './store';

export type { EtcdConfig } from './etcd-session';

/** How often a decision is re-read and tried again when another node changed what it read. */
const ATTEMPTS = 20;
const CREATING_POLL_MS = 100;

export class EtcdStore implements Store {
  /** One set of volumes for every node: dockerd then treats a volume as the cluster's. */
  readonly scope = 'global';
  readonly node: string;
  readonly keys: Keys;
  readonly session: EtcdSession;
  private readonly feed: RecordFeed;
  private readonly own: OwnLeases;
  /** A generation not yet written (etcd was unreachable). */
  private generation?: number;
  /** What this node published under its name: marker token and identity (etcd-marker.ts, etcd-node.ts). */
  private published?: Published;

  constructor(
    /** `stateDir`: its store id tells this hostvol's restarts apart from another hostvol with its name. */
    readonly config: EtcdConfig & { dataRoot: string; stateDir: string },
    private readonly log: Logger,
  ) {
    this.node = config.node;
    this.keys = new Keys(config.prefix.replace(/\/+$/, ''), config.node);
    this.session = new EtcdSession(config, log);
    this.feed = new RecordFeed(this.keys, log);
    this.own = new OwnLeases(this.session, log);
    this.session.onRestored = () => this.writeGeneration().then(() => this.own.repair());
    this.session.onRegained = () => this.regained();
  }

  /**
   * Grants the node's lease, refuses a node name another live hostvol uses (etcd-node.ts) and a data
   * root the other nodes do not share (etcd-marker.ts), reads
   * every record and this node's leases (taking over those a previous hostvol process left within
   * the TTL) and starts watching the records from the revision read.
   */
  async load(): Promise<Snapshot> {
    await this.session.open();
    try {
      const self = nodeIdentity(this.config.stateDir);
      this.published = await checkSharedDataRoot(this.session, this.keys, this.config.dataRoot, self, this.config.leaseTtl);
      const k = this.keys;
      const res = await this.txn('read the volume records', [], [
        range(k.volumes(), true), range(k.allLeases(), true), range(k.generation()), range(k.nodes(), true),
      ]);
      const live = new Set(res.responses[3].response_range.kvs.map((kv) => k.nameOf(kv.key.toString())));
      const volumes: VolumeRecord[] = [];
      for (const kv of res.responses[0].response_range.kvs) {
        const rec = decodeRecord(kv.value);
        // Another node's create in progress is not a volume yet; the watch reports it once ready.
        if (rec.state === 'creating' && rec.node !== k.node) continue;
        // Start-up finishes every remove it is handed: one a live node is still doing (or may undo,
        // when it fails before deleting anything) is that node's; one of a node that is gone is ours.
        if (rec.state === 'removing' && rec.node !== k.node && live.has(rec.node)) continue;
        volumes.push(plain(rec));
        this.feed.saw(rec.name, Number(kv.mod_revision));
      }
      const leases: LeaseRecord[] = [];
      for (const kv of res.responses[1].response_range.kvs) {
        const key = kv.key.toString();
        const at = k.parseLease(key);
        if (!at || at.node !== k.node) continue;
        // A previous hostvol process of this node left it, within the TTL: moved to this process's
        // etcd lease, unless it expired since it was read (then another node may have taken the volume).
        const moved = await this.txn('take over the mount leases of the previous hostvol process', [modIs(key, kv.mod_revision)], [
          put(key, kv.value.toString(), this.session.id),
        ]);
        if (!moved.succeeded) continue;
        const l = JSON.parse(kv.value.toString()) as StoredLease;
        this.own.taken(key, { ...l, volume: at.volume, id: at.id });
        leases.push({ volume: at.volume, id: at.id, count: l.count, bootId: l.bootId, generation: l.generation });
      }
      const gen = res.responses[2].response_range.kvs[0];
      await this.feed.start(this.session.client, Number(res.header.revision) + 1);
      return { volumes, leases, generation: gen ? Number(gen.value.toString()) : 0 };
    } catch (err) {
      this.session.close();
      throw err;
    }
  }

  async insertVolume(rec: VolumeRecord): Promise<VolumeRecord | undefined> {
    const key = this.keys.volume(rec.name);
    const value = encodeRecord(rec, this.keys.node);
    // A record in progress belongs to its node's etcd lease: if that node dies, it goes with it.
    const lease = rec.state === 'creating' ? this.session.id : undefined;
    const until = Date.now() + this.session.opTimeoutMs;
    const k = this.keys;
    let settled = 0;
    for (;;) {
      // With its directory's claim: no other volume may have it, a directory inside it or around it.
      const compare = [absent(key), ...unclaimed(k, rec.path)];
      const res = await this.write(rec.name, `record volume "${rec.name}"`, compare, [put(key, value, lease), put(claimKey(k, rec.path), rec.name)], [range(key), ...claimReads(k, rec.path)], () =>
        this.own.unconfirmedRecord(key, value),
      );
      if (res.succeeded) return undefined;
      const kv = res.responses[0].response_range.kvs[0];
      if (!kv) {
        // Each round refuses (a live volume nests) or clears a stale claim: bounded by rounds, not by
        // the time left, which waiting for another node's create may have used up just before.
        if (++settled > ATTEMPTS) throw this.contended(rec.name);
        await settleClaims(this.session, k, rec.name, rec.path, res.responses.slice(1).flatMap((r) => r.response_range.kvs));
        continue;
      }
      const theirs = decodeRecord(kv.value);
      if (kv.value.toString() === value) return undefined; // our own write, retried after a lost reply
      if (theirs.state === 'ready') {
        // Known now at this revision: older reports of it (its 'creating') must not undo that.
        this.feed.saw(rec.name, Number(kv.mod_revision));
        return plain(theirs);
      }
      if (theirs.state === 'removing') {
        throw new ConflictError(`volume "${rec.name}" is being removed by node ${theirs.node}; create it again once that is done`);
      }
      if (Date.now() > until) {
        throw new ConflictError(`volume "${rec.name}" is being created by node ${theirs.node} and is not ready yet; try again`);
      }
      await new Promise((r) => setTimeout(r, CREATING_POLL_MS));
    }
  }

  async setState(name: string, state: RecordState): Promise<void> {
    for (let i = 0; i < ATTEMPTS; i++) {
      const v = await this.view(name, `mark volume "${name}" ${state}`);
      if (!v.record) throw this.gone(name);
      const compare = [modIs(this.keys.volume(name), v.recordMod)];
      if (state === 'removing') {
        // A node whose table lags may still know an earlier volume of this name: it must not remove
        // the one another node is making now.
        if (v.record.state === 'creating' && v.record.node !== this.keys.node) {
          throw new ConflictError(`volume "${name}" is being created by node ${v.record.node}; remove it once it is ready`);
        }
        this.refuseOthers(name, v, 'removed');
        compare.push(modIs(this.keys.guard(name), v.guardMod));
      }
      const value = encodeRecord(withState(v.record, state), this.keys.node);
      const lease = state === 'creating' ? this.session.id : undefined;
      const res = await this.write(name, `mark volume "${name}" ${state}`, compare, [put(this.keys.volume(name), value, lease)]);
      if (res.succeeded) return;
    }
    throw this.contended(name);
  }

  async deleteVolume(name: string): Promise<void> {
    const k = this.keys;
    for (let i = 0; i < ATTEMPTS; i++) {
      const v = await this.view(name, `forget volume "${name}"`);
      this.refuseOthers(name, v, 'removed');
      const compare = [modIs(k.guard(name), v.guardMod), v.record ? modIs(k.volume(name), v.recordMod) : absent(k.volume(name))];
      const claim = v.record ? [del(claimKey(k, v.record.path))] : [];
      const res = await this.write(name, `forget volume "${name}"`, compare, [del(k.volume(name)), del(k.guard(name)), del(k.ownLeasesOf(name), true), ...claim]);
      if (res.succeeded) return this.own.forget(name);
    }
    throw this.contended(name);
  }

  async setLease(lease: LeaseRecord, opts: { exclusive?: boolean } = {}): Promise<number> {
    const key = this.keys.lease(lease.volume, lease.id);
    const before = this.own.held.get(key);
    if (lease.count <= 0 || (before && lease.count < before.count)) return this.own.release(key, lease).then(() => 0);
    const exclusive = !!opts.exclusive;
    const h: Held = { volume: lease.volume, id: lease.id, count: lease.count, bootId: lease.bootId, generation: lease.generation, exclusive: exclusive || !!before?.exclusive };
    return this.take(key, h, exclusive, `record a mount of volume "${lease.volume}"`);
  }

  /**
   * dockerd's Activate must not fail because etcd is away (the plugin would be unusable once etcd is
   * back): the generation is this node's alone, so when etcd does not answer it is written later.
   */
  async setGeneration(n: number): Promise<void> {
    this.generation = n;
    await this.writeGeneration().catch((err) => this.log.warn({ generation: n, err: describe(err) }, 'client generation recorded once etcd is back'));
  }

  private async writeGeneration(): Promise<void> {
    const n = this.generation;
    if (n === undefined) return;
    await this.txn('record the client generation', [], [put(this.keys.generation(), String(n))]);
    if (this.generation === n) this.generation = undefined;
  }

  async dropLeasesFromOtherBoots(bootId: string): Promise<number> {
    const stale = [...this.own.held].filter(([, h]) => h.bootId !== bootId).map(([key]) => key);
    if (stale.length === 0) return 0;
    await this.txn('drop the mount leases of a previous boot', [], stale.map((key) => del(key)));
    for (const key of stale) this.own.held.delete(key);
    return stale.length;
  }

  watch(listener: (change: RemoteChange) => void): () => void {
    return this.feed.listen(listener);
  }

  async lookup(name: string): Promise<VolumeRecord | undefined> {
    const view = await readView(this.session, this.keys, name, `read volume "${name}"`);
    return view.record ? plain(view.record) : undefined;
  }

  /** Read from etcd, not from what this node holds: the point is the other nodes' leases. */
  leases(volume?: string): Promise<NodeLease[]> {
    return readLeases(this.session, this.keys, volume);
  }

  health(): StoreHealth {
    return this.session.status();
  }

  async close(): Promise<void> {
    this.feed.stop();
    this.session.close();
  }

  /**
   * Takes (or counts up) one lease of this node, if the volume is ready and, for `exclusive`, no other
   * Mount ID on any node holds it. The guard key is rewritten with it, so a decision made at the
   * same time elsewhere fails its compare and is made again. The revision it commits at is the token.
   */
  private async take(key: string, l: Held, exclusive: boolean, what: string): Promise<number> {
    const k = this.keys;
    const value = encodeLease(l);
    for (let i = 0; i < ATTEMPTS; i++) {
      const v = await this.view(l.volume, what);
      if (!v.record) throw this.gone(l.volume);
      if (v.record.state !== 'ready') {
        throw new ConflictError(`volume "${l.volume}" is being ${v.record.state === 'removing' ? 'removed' : 'created'} (node ${v.record.node}); it cannot be mounted`);
      }
      const others = v.leases.filter((x) => x.key !== key);
      if (exclusive && others.length > 0) {
        throw new ConflictError(
          `volume "${l.volume}" is single-writer (option Z) and is already mounted by another container (on node ${nodesOf(others)}); ` +
            'stop that container first, or use a volume without Z',
        );
      }
      const compare = [modIs(k.volume(l.volume), v.recordMod), modIs(k.guard(l.volume), v.guardMod)];
      const res = await this.txn(what, compare, [put(key, value, this.session.id), put(k.guard(l.volume), k.node)], [], () => this.own.uncertain(key));
      if (res.succeeded) {
        this.own.taken(key, l);
        return Number(res.header.revision);
      }
    }
    throw this.contended(l.volume);
  }

  /** A new etcd lease after the old one expired: publish the node again, take its leases again. */
  private async regained(): Promise<void> {
    if (this.published) {
      await publishNode(this.session, this.keys, this.published, this.config.leaseTtl).catch((err) =>
        this.log.error({ err: describe(err), node: this.node }, 'could not publish this node again'),
      );
    }
    await this.own.retake((key, h) => this.take(key, h, h.exclusive, `take again a mount of volume "${h.volume}"`));
  }

  private view(name: string, what: string): Promise<View> {
    return readView(this.session, this.keys, name, what);
  }

  /** A change of a record: bracketed for the watch, so its echo is not taken for another node's. */
  private async write(name: string, what: string, compare: ICompare[], success: IRequestOp[], failure: IRequestOp[] = [], unconfirmed?: () => void): Promise<ITxnResponse> {
    this.feed.begin(name);
    let revision: number | undefined;
    try {
      const res = await this.txn(what, compare, success, failure, unconfirmed);
      if (res.succeeded) revision = Number(res.header.revision);
      return res;
    } finally {
      this.feed.end(name, revision);
    }
  }

  private txn(what: string, compare: ICompare[], success: IRequestOp[], failure: IRequestOp[] = [], unconfirmed?: () => void): Promise<ITxnResponse> {
    return txn(this.session, what, compare, success, failure, unconfirmed);
  }

  /** No other node may hold a lease of a volume that is removed. */
  private refuseOthers(name: string, v: View, verb: string): void {
    const others = v.leases.filter((l) => l.node !== this.keys.node);
    if (others.length === 0) return;
    throw new ConflictError(
      `volume "${name}" is in use on node ${nodesOf(others)} (${others.length} mount(s)) and cannot be ${verb}; stop the containers using it there first`,
    );
  }

  private gone(name: string): HostvolError {
    return new ConflictError(`volume "${name}" has no record in etcd: another node removed it`);
  }

  private contended(name: string): HostvolError {
    return new HostvolError(`volume "${name}": etcd kept changing under this request (${ATTEMPTS} attempts); try again`);
  }
}

function nodesOf(leases: { node: string }[]): string {
  return [...new Set(leases.map((l) => l.node))].sort().join(', ');
}
