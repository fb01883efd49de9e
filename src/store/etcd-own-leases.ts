// This node's own mount leases, as the driver last recorded them, and how etcd is brought back in
// line with them after an outage. etcd is the authority for decisions; this copy is what the node
// must hold there: an Unmount made while etcd was unreachable is applied once it answers (it only
// makes room for others, so it may wait; it would expire with the node's etcd lease anyway), and
// when the node's etcd lease expired meanwhile, every lease still held is taken again under the
// rules of a Mount, or the conflict is logged loudly (another node took a Z volume meanwhile).
import type { Logger } from 'pino';
import { ConflictError, describe } from '../errors';
import type { StoredLease } from './etcd-keys';
import { del, put, txn, valueIs } from './etcd-ops';
import type { EtcdSession } from './etcd-session';
import type { LeaseRecord } from './store';

export interface Held extends StoredLease {
  volume: string;
  id: string;
}

export function encodeLease(h: Held): string {
  return JSON.stringify({ count: h.count, bootId: h.bootId, generation: h.generation, exclusive: h.exclusive } satisfies StoredLease);
}

export class OwnLeases {
  /** By lease key: what etcd should hold for this node. */
  readonly held = new Map<string, Held>();
  /** Own lease keys whose value in etcd may differ from `held`. */
  private readonly dirty = new Set<string>();
  /** Records this node may have written though the write was not confirmed: removed once etcd answers. */
  private readonly unconfirmed = new Map<string, string>();
  private repairing?: Promise<void>;

  constructor(
    private readonly session: EtcdSession,
    private readonly log: Logger,
  ) {}

  /** A take whose answer never came: etcd may hold it; the next repair makes etcd match `held`. */
  uncertain(key: string): void {
    this.dirty.add(key);
  }

  taken(key: string, h: Held): void {
    this.held.set(key, h);
    this.dirty.delete(key);
  }

  /** A record write whose answer never came: removed at the next repair if it is still what was written. */
  unconfirmedRecord(key: string, value: string): void {
    this.unconfirmed.set(key, value);
  }

  /** The volume is forgotten, with this node's leases of it. */
  forget(volume: string): void {
    for (const [key, h] of this.held) if (h.volume === volume) (this.held.delete(key), this.dirty.delete(key));
  }

  /** An Unmount: recorded here at once, written to etcd now or, when etcd does not answer, later. */
  async release(key: string, lease: LeaseRecord): Promise<void> {
    const before = this.held.get(key);
    if (lease.count > 0 && before) this.held.set(key, { ...before, count: lease.count, generation: lease.generation });
    else this.held.delete(key);
    this.dirty.add(key);
    if (this.session.status().available) {
      try {
        return await this.sync(key);
      } catch (err) {
        this.log.warn({ volume: lease.volume, id: lease.id, err: describe(err) }, 'etcd unreachable: the unmount is queued and applied once etcd is back');
        return;
      }
    }
    this.log.warn({ volume: lease.volume, id: lease.id, count: lease.count }, 'etcd unreachable: the unmount is queued and applied once etcd is back');
  }

  /** etcd answers again: apply the queued Unmounts, and remove records whose write was never confirmed. */
  repair(): Promise<void> {
    this.repairing ??= (async () => {
      try {
        for (const key of [...this.dirty]) await this.sync(key);
        for (const [key, value] of [...this.unconfirmed]) {
          await txn(this.session, 'undo an unconfirmed create', [valueIs(key, value)], [del(key)]);
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
   * The node's etcd lease expired while etcd was away, and every key on it with it: take each lease
   * still held again with `take` (the rules of a Mount). A Z volume another node mounted meanwhile
   * cannot be taken back: logged as an error, since a container here still has it mounted.
   */
  async retake(take: (key: string, h: Held) => Promise<number>): Promise<void> {
    this.unconfirmed.clear(); // they were attached to the lost lease: gone with it
    for (const [key, h] of [...this.held]) {
      try {
        await take(key, h);
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
    await this.repair();
  }

  /** Makes etcd hold what `held` says for one own lease key. */
  private async sync(key: string): Promise<void> {
    const h = this.held.get(key);
    await txn(this.session, `release a mount of volume "${h?.volume ?? key}"`, [], [h ? put(key, encodeLease(h), this.session.id) : del(key)]);
    this.dirty.delete(key);
  }
}
