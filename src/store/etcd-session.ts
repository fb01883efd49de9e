// One node's connection to etcd: the client, the node's etcd lease (TTL --lease-ttl, kept alive every
// TTL/3 by etcd3's Lease), whether etcd answers, and a bound on every call. Everything a node holds
// for a while (its mount leases, its liveness key) is attached to that lease, so a node that dies or
// is cut off loses it all once the TTL runs out; a node that comes back gets a new lease and is told
// (`regained`) so it can take again what it still has.
import { Etcd3, type Lease } from 'etcd3';
import type { Logger } from 'pino';
import { HostvolError, describe } from '../errors';
import type { StoreHealth } from './store';

export interface EtcdConfig {
  /** Client URLs of the members (`--etcd`). */
  urls: string[];
  /** This node's name (`--node-name`); mount leases and records carry it. */
  node: string;
  /** Every key lives below it (`--etcd-prefix`). */
  prefix: string;
  /** Seconds a node's leases outlive it (`--lease-ttl`). */
  leaseTtl: number;
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  /**
   * The longest one change may take before it is refused as "etcd unreachable": dockerd waits 120 s
   * for Create and Mount and 60 s for the others, so answer well before (default 5 s).
   */
  opTimeoutMs?: number;
}

const PROBE_MS = 500;

/** Doubling from `duration` up to 1 s (cockatiel's IBackoff shape, which etcd3 takes). */
class Backoff {
  constructor(readonly duration: number) {}
  next(): Backoff {
    return new Backoff(Math.min(this.duration * 2, 1000));
  }
}

export class EtcdSession {
  readonly client: Etcd3;
  private lease!: Lease;
  private leaseId = '';
  private health: StoreHealth = { available: true };
  private probing?: NodeJS.Timeout;
  private regaining = false;
  private closed = false;
  readonly opTimeoutMs: number;
  /**
   * One try of a call. A request a member forwarded to a leader that just died is never answered
   * (etcd gives up on it only after its own ~7 s), so a call is tried again on time, within the bound.
   */
  private readonly attemptMs: number;
  /** Called once etcd answers again after an outage (queued changes can go now). */
  onRestored: () => Promise<void> = async () => undefined;
  /** Called with the new lease id after the node's etcd lease was lost and a new one granted. */
  onRegained: (leaseId: string) => Promise<void> = async () => undefined;

  constructor(
    readonly config: EtcdConfig,
    private readonly log: Logger,
  ) {
    this.opTimeoutMs = config.opTimeoutMs ?? 5_000;
    this.attemptMs = Math.max(500, Math.floor(this.opTimeoutMs / 3));
    const deadline = this.attemptMs;
    this.client = new Etcd3({
      hosts: config.urls,
      credentials: config.tls ? { rootCertificate: config.tls.ca, privateKey: config.tls.key, certChain: config.tls.cert } : undefined,
      dialTimeout: Math.min(deadline, 3_000),
      // Streams (watch, keepalive) live for good; single calls get a deadline, so a member without a
      // leader cannot hold a request past what dockerd waits.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + deadline }),
      // The record watch reconnects after an outage at most a second after etcd is back (the
      // default backoff grows to 30 s, so a node would learn of other nodes' volumes that late).
      faultHandling: { watchBackoff: new Backoff(100) },
    });
  }

  /** Grants the node's etcd lease; fails with a clear error when etcd does not answer. */
  async open(): Promise<string> {
    try {
      await this.call('grant this node a lease', () => this.grant());
    } catch (err) {
      this.client.close();
      throw err;
    }
    return this.leaseId;
  }

  /** The id of the node's current etcd lease (what its keys are attached to). */
  get id(): string {
    return this.leaseId;
  }

  status(): StoreHealth {
    return this.health;
  }

  /**
   * Runs `fn` (etcd calls only) within the time bound. A failure that is not etcd refusing the
   * request itself means etcd is unreachable or has no quorum: the node is marked unavailable, and
   * the error says what was not done and that Get/List still answer.
   */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new HostvolError(`cannot ${what}: the etcd store is closed`);
    const until = Date.now() + this.opTimeoutMs;
    let last: unknown;
    // Every call made through here is safe to repeat: a transaction guarded by revisions fails its
    // compare if an earlier try did commit, and is then decided again from a fresh read.
    while (Date.now() < until) {
      let timer: NodeJS.Timeout | undefined;
      const ms = Math.min(this.attemptMs, until - Date.now());
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      });
      try {
        const result = await Promise.race([fn(), timeout]);
        this.up();
        return result;
      } catch (err) {
        last = err;
        if (!this.retriable(err)) break;
      } finally {
        clearTimeout(timer);
      }
      if (this.closed) break;
    }
    this.down(describe(last));
    throw new HostvolError(
      `cannot ${what}: etcd (${this.config.urls.join(',')}) is unreachable or has no quorum (${describe(last)}); ` +
        'this node keeps answering Get and List from its last known state and applies Unmounts once etcd is back; try again then',
    );
  }

  /** etcd refusing the request itself (bad request, permission) would fail the same way again. */
  private retriable(err: unknown): boolean {
    const name = (err as Error)?.constructor?.name ?? '';
    return !/InvalidArgument|PermissionDenied|Unauthenticated|AuthenticationFailed|ClientClosed|FailedPrecondition/.test(name);
  }

  private async grant(): Promise<void> {
    const lease = this.client.lease(this.config.leaseTtl, { autoKeepAlive: true });
    const id = await lease.grant();
    this.lease?.removeAllListeners();
    this.lease = lease;
    this.leaseId = id;
    lease.on('keepaliveSucceeded', () => this.up());
    lease.on('keepaliveFailed', (err) => this.down(`lease keepalive failed: ${describe(err)}`));
    // The lease expired (etcd unreachable past the TTL): every key attached to it is gone.
    lease.on('lost', (err) => {
      if (this.closed || lease !== this.lease) return;
      this.log.error({ err: describe(err), node: this.config.node }, 'this node lost its etcd lease: its mount leases are gone from etcd until it can take them again');
      this.down(`etcd lease lost: ${describe(err)}`);
      void this.regain();
    });
  }

  /** Grants a new lease as soon as etcd answers, then lets the store take again what it holds. */
  private async regain(): Promise<void> {
    if (this.regaining) return;
    this.regaining = true;
    try {
      while (!this.closed) {
        try {
          await this.call('grant this node a new lease', () => this.grant());
          await this.onRegained(this.leaseId);
          return;
        } catch (err) {
          this.log.warn({ err: describe(err) }, 'no new etcd lease yet; retrying');
          await new Promise((r) => setTimeout(r, PROBE_MS));
        }
      }
    } finally {
      this.regaining = false;
    }
  }

  private up(): void {
    if (this.health.available) return;
    this.log.info({ was: this.health.reason }, 'etcd answers again');
    this.health = { available: true };
    clearTimeout(this.probing);
    this.probing = undefined;
    void this.onRestored().catch((err) => this.log.error({ err: describe(err) }, 'could not apply the changes queued while etcd was unreachable'));
  }

  private down(reason: string): void {
    if (this.closed) return;
    if (this.health.available) {
      this.log.warn({ reason }, 'etcd unreachable: Create, Mount and Remove are refused, Get and List answer from the last known state');
      this.health = { available: false, reason, since: new Date().toISOString() };
    }
    this.probe();
  }

  /** While unavailable, asks etcd (a linearizable read: it needs a quorum) until it answers. */
  private probe(): void {
    if (this.probing || this.closed) return;
    this.probing = setTimeout(() => {
      this.probing = undefined;
      if (this.health.available) return;
      this.call('reach etcd', () => this.client.get(`${this.config.prefix}/nodes/`).exists()).catch(() => undefined);
    }, PROBE_MS);
    this.probing.unref();
  }

  /**
   * Stops keepalives without revoking the lease: a hostvol restarted within the TTL takes its mount
   * leases over (containers keep running across a restart); one that stays away loses them at expiry.
   */
  close(): void {
    this.closed = true;
    clearTimeout(this.probing);
    this.lease?.release();
    this.client.close();
  }
}
