// The cluster store: volume records and mount leases in etcd v3 (layout: etcd-keys.ts), shared by
// every node. Each change is one transaction guarded by the revisions its decision was read at
// (mod_revision compares), so two nodes deciding at once cannot both win: the loser re-reads and
// decides again. What this node holds (its mount leases) is also kept here, in `held`, so that it
// can be put back after an outage: Unmounts made while etcd was unreachable are applied once it
// answers, and leases lost with the node's etcd lease are taken again (or the conflict is logged).
import type { IRequestOp, IKeyValue, ICompare, ITxnResponse } from 'etcd3';
import type { Logger } from 'pino';
import { ConflictError, HostvolError, describe } from '../errors';
import { Keys, decodeRecord, encodeRecord, plain, prefixEnd, withState, type StoredLease, type StoredRecord } from './etcd-keys';
import { checkSharedDataRoot, publishNode } from './etcd-marker';
import { EtcdSession, type EtcdConfig } from './etcd-session';
import { RecordFeed } from './etcd-watch';
import type { LeaseRecord, RecordState, RemoteChange, Snapshot, Store, StoreHealth, VolumeRecord } from './store';

export type { EtcdConfig } from './etcd-session';

/** What one transaction's decision was read from: the record, the guard and every lease of a volume. */
interface View {
  record?: StoredRecord;
  recordMod: string;
  guardMod: string;
  leases: { key: string; node: string; id: string }[];
}

interface Held extends StoredLease {
  volume: string;
  id: string;
}

/** How often a decision is re-read and tried again when another node changed what it read. */
const ATTEMPTS = 20;
const CREATING_POLL_MS = 100;

const put = (key: string, value: string, lease?: string): IRequestOp => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value), lease } });
const del = (key: string, prefix = false): IRequestOp => ({
  request_delete_range: { key: Buffer.from(key), range_end: prefix ? prefixEnd(key) : undefined },
});
const range = (key: string, prefix = false): IRequestOp => ({ request_range: { key: Buffer.from(key), range_end: prefix ? prefixEnd(key) : undefined } });
const modIs = (key: string, rev: string): ICompare => ({ key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: rev });
const absent = (key: string): ICompare => ({ key: Buffer.from(key), target: 'Version', result: 'Equal', version: 0 });

export class EtcdStore implements Store {
  /** One set of volumes for every node: dockerd then treats a volume as the cluster's. */
  readonly scope = 'global';
  readonly keys: Keys;
  readonly session: EtcdSession;
  private readonly feed: RecordFeed;
  /** This node's leases by key, as last recorded by the driver: what etcd should hold for it. */
  private readonly held = new Map<string, Held>();
  /** Own lease keys whose value in etcd may differ from `held` (an Unmount while etcd was away). */
  private readonly dirty = new Set<string>();
  /** Records this node may have written though the write was not confirmed: removed once etcd answers. */
  private readonly unconfirmed = new Map<string, string>();
  private repairing?: Promise<void>;
  /** This node's data-root marker token (etcd-marker.ts). */
  private token = '';

  constructor(
    readonly config: EtcdConfig & { dataRoot: string },
    private readonly log: Logger,
  ) {
    this.keys = new Keys(config.prefix.replace(/\/+$/, ''), config.node);
    this.session = new EtcdSession(config, log);
    this.feed = new RecordFeed(this.keys, log);
    this.session.onRestored = () => this.repair();
    this.session.onRegained = () => this.retake();
  }

  /**
   * Grants the node's lease, refuses a data root the other nodes do not share (etcd-marker.ts), reads
   * every record and this node's leases (taking over those a previous hostvol process left within
   * the TTL) and starts watching the records from the revision read.
   */
  async load(): Promise<Snapshot> {
    await this.session.open();
    try {
      this.token = await checkSharedDataRoot(this.session, this.keys, this.config.dataRoot);
      const k = this.keys;
      const res = await this.txn('read the volume records', [], [range(k.volumes(), true), range(k.allLeases(), true), range(k.generation())]);
      const volumes: VolumeRecord[] = [];
      for (const kv of res.responses[0].response_range.kvs) {
        const rec = decodeRecord(kv.value);
        // Another node's create in progress is not a volume yet; the watch reports it once ready.
        if (rec.state === 'creating' && rec.node !== k.node) continue;
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
        this.held.set(key, { ...l, volume: at.volume, id: at.id });
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
    for (;;) {
      const res = await this.write(rec.name, `record volume "${rec.name}"`, [absent(key)], [put(key, value, lease)], [range(key)], () =>
        this.unconfirmed.set(key, value),
      );
      if (res.succeeded) return undefined;
      const kv = res.responses[0].response_range.kvs[0];
      const theirs = decodeRecord(kv.value);
      if (kv.value.toString() === value) return undefined; // our own write, retried after a lost reply
      if (theirs.state === 'ready') return plain(theirs);
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
      const res = await this.write(name, `forget volume "${name}"`, compare, [del(k.volume(name)), del(k.guard(name)), del(k.ownLeasesOf(name), true)]);
      if (res.succeeded) {
        for (const [key, h] of this.held) if (h.volume === name) (this.held.delete(key), this.dirty.delete(key));
        return;
      }
    }
    throw this.contended(name);
  }

  async setLease(lease: LeaseRecord, opts: { exclusive?: boolean } = {}): Promise<number> {
    const key = this.keys.lease(lease.volume, lease.id);
    const before = this.held.get(key);
    if (lease.count <= 0 || (before && lease.count < before.count)) return this.release(key, lease, before);
    const stored: Held = { volume: lease.volume, id: lease.id, count: lease.count, bootId: lease.bootId, generation: lease.generation, exclusive: !!opts.exclusive || !!before?.exclusive };
    const token = await this.take(key, stored, !!opts.exclusive, `record a mount of volume "${lease.volume}"`);
    this.held.set(key, stored);
    return token;
  }

  async setGeneration(n: number): Promise<void> {
    await this.txn('record the client generation', [], [put(this.keys.generation(), String(n))]);
  }

  async dropLeasesFromOtherBoots(bootId: string): Promise<number> {
    const stale = [...this.held].filter(([, h]) => h.bootId !== bootId).map(([key]) => key);
    if (stale.length === 0) return 0;
    await this.txn('drop the mount leases of a previous boot', [], stale.map((key) => del(key)));
    for (const key of stale) this.held.delete(key);
    return stale.length;
  }

  watch(listener: (change: RemoteChange) => void): () => void {
    return this.feed.listen(listener);
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
    const value = JSON.stringify({ count: l.count, bootId: l.bootId, generation: l.generation, exclusive: l.exclusive } satisfies StoredLease);
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
      const res = await this.txn(what, [modIs(k.volume(l.volume), v.recordMod), modIs(k.guard(l.volume), v.guardMod)], [put(key, value, this.session.id), put(k.guard(l.volume), k.node)], [], () =>
        this.dirty.add(key),
      );
      if (res.succeeded) {
        this.dirty.delete(key);
        return Number(res.header.revision);
      }
    }
    throw this.contended(l.volume);
  }

  /**
   * An Unmount: it only ever makes room for others, so when etcd does not answer it is queued and
   * applied once etcd is back (the lease would expire with the node's etcd lease anyway).
   */
  private async release(key: string, lease: LeaseRecord, before: Held | undefined): Promise<number> {
    if (lease.count > 0) this.held.set(key, { ...before!, count: lease.count, generation: lease.generation });
    else this.held.delete(key);
    this.dirty.add(key);
    if (!this.session.status().available) {
      this.log.warn({ volume: lease.volume, id: lease.id, count: lease.count }, 'etcd unreachable: the unmount is queued and applied once etcd is back');
      return 0;
    }
    try {
      await this.sync(key);
    } catch (err) {
      this.log.warn({ volume: lease.volume, id: lease.id, err: describe(err) }, 'etcd unreachable: the unmount is queued and applied once etcd is back');
    }
    return 0;
  }

  /** Makes etcd hold what `held` says for one own lease key. */
  private async sync(key: string): Promise<void> {
    const h = this.held.get(key);
    const op = h
      ? put(key, JSON.stringify({ count: h.count, bootId: h.bootId, generation: h.generation, exclusive: h.exclusive } satisfies StoredLease), this.session.id)
      : del(key);
    await this.txn(`release a mount of volume "${h?.volume ?? key}"`, [], [op]);
    this.dirty.delete(key);
  }

  /** etcd answers again: apply the queued Unmounts, and remove records whose write was never confirmed. */
  private repair(): Promise<void> {
    this.repairing ??= (async () => {
      try {
        for (const key of [...this.dirty]) await this.sync(key);
        for (const [key, value] of [...this.unconfirmed]) {
          await this.txn('undo an unconfirmed create', [{ key: Buffer.from(key), target: 'Value', result: 'Equal', value: Buffer.from(value) }], [del(key)]);
          this.unconfirmed.delete(key);
        }
        if (this.dirty.size === 0) this.log.info('changes queued while etcd was unreachable are applied');
      } finally {
        this.repairing = undefined;
      }
    })();
    return this.repairing;
  }

  /**
   * The node's etcd lease expired while etcd was away, and every key on it with it: take each
   * lease this node still has again, under the same rules as a Mount. A `Z` volume another node
   * mounted meanwhile cannot be taken back; that is logged as an error, since a container here still
   * has it mounted: stop it.
   */
  private async retake(): Promise<void> {
    this.unconfirmed.clear(); // they were attached to the lost lease: gone with it
    for (const [key, h] of [...this.held]) {
      try {
        await this.take(key, h, h.exclusive, `take again a mount of volume "${h.volume}"`);
        this.log.info({ volume: h.volume, id: h.id }, 'took a mount lease again after the etcd lease was lost');
      } catch (err) {
        if (!(err instanceof ConflictError)) {
          this.dirty.add(key);
          continue;
        }
        this.log.error(
          { volume: h.volume, id: h.id, err: describe(err) },
          'CONFLICT: while this node was cut off from etcd its lease expired and another node took this volume; a container on this node still has it mounted: stop it',
        );
      }
    }
    await publishNode(this.session, this.keys, this.token, this.config.dataRoot).catch((err) =>
      this.log.error({ err: describe(err) }, 'could not publish this node again'),
    );
    await this.repair();
  }

  private async view(name: string, what: string): Promise<View> {
    const k = this.keys;
    const res = await this.txn(what, [], [range(k.volume(name)), range(k.guard(name)), range(k.leasesOf(name), true)]);
    const [rec, guard, leases] = res.responses.map((r) => r.response_range.kvs);
    return {
      record: rec[0] ? decodeRecord(rec[0].value) : undefined,
      recordMod: rec[0]?.mod_revision ?? '0',
      guardMod: guard[0]?.mod_revision ?? '0',
      leases: leases.map((kv: IKeyValue) => ({ key: kv.key.toString(), ...k.parseLease(kv.key.toString())! })),
    };
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

  /** One transaction within the time bound; `unconfirmed` runs when it may have committed unseen. */
  private async txn(what: string, compare: ICompare[], success: IRequestOp[], failure: IRequestOp[] = [], unconfirmed?: () => void): Promise<ITxnResponse> {
    const client = this.session.client;
    try {
      return await this.session.call(what, () => client.kv.txn({ compare, success, failure }));
    } catch (err) {
      unconfirmed?.();
      throw err;
    }
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
