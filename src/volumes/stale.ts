// Mount leases whose Unmount may never come, and when they can be dropped. Two ways to lose one:
// dockerd was killed (its successor sends /Plugin.Activate again and unmounts only the containers it
// restarts), or hostvol was down while a container went away (dockerd does not retry that Unmount).
// Such a lease is dropped once no mount namespace still has the volume's directory mounted.
import type { Logger } from 'pino';
import { describe } from '../errors';
import type { Store } from '../store/store';
import type { Volume } from './volume';

export interface StaleDeps {
  store: Store;
  log: Logger;
  bootId: string;
  /** True when a container somewhere has `dir` mounted; undefined when this process cannot tell. */
  inUse(dir: string): Promise<boolean | undefined>;
  /** Delay before the first sweep pass (default 5 s); it doubles while leases stay, up to 10 min. */
  sweepMs?: number;
}

/** What the sweeper needs of the driver: its volumes, under the volume's lock, and the bind release. */
export interface SweepTarget {
  volumes(): Iterable<Volume>;
  /** Runs `fn` under the volume's lock if the volume still exists; undefined when it is gone. */
  locked<T>(v: Volume, fn: () => Promise<T>): Promise<T | undefined>;
  /** Called once a volume has no leases left. */
  released(v: Volume): Promise<void>;
}

const FIRST_PASS_MS = 5_000;
const MAX_PASS_MS = 10 * 60_000;

export class StaleLeases {
  private sweeper: NodeJS.Timeout | undefined;
  private readonly firstMs: number;
  private delay: number;

  constructor(
    private readonly deps: StaleDeps,
    /** Which dockerd we serve: advanced by every /Plugin.Activate, kept across our own restarts. */
    public generation: number,
  ) {
    this.firstMs = deps.sweepMs ?? FIRST_PASS_MS;
    this.delay = this.firstMs;
  }

  /** Mount IDs from before dockerd's last Activate, or recorded by an earlier hostvol process. */
  ids(v: Volume): string[] {
    return [...v.leases].filter(([, l]) => l.inherited || l.generation < this.generation).map(([id]) => id);
  }

  /**
   * Drops the stale leases of `v` when no container anywhere has its directory mounted (with
   * --live-restore the containers do, and keep them). False when this process cannot tell.
   */
  async reclaim(v: Volume, target: SweepTarget): Promise<boolean> {
    const stale = this.ids(v);
    if (stale.length === 0) return true;
    const busy = await this.deps.inUse(v.path);
    if (busy !== false) return busy === true;
    await this.drop(v, stale, 'no container has the volume mounted');
    if (v.leases.size === 0) await target.released(v);
    return true;
  }

  /** Forgets leases for good, durably first. */
  async drop(v: Volume, ids: string[], why: string): Promise<void> {
    for (const id of ids) {
      const l = v.leases.get(id);
      if (!l) continue;
      await this.deps.store.setLease({ volume: v.name, id, count: 0, bootId: this.deps.bootId, generation: l.generation });
      v.leases.delete(id);
    }
    this.deps.log.warn({ volume: v.name, ids }, `dropped mount leases whose Unmount was lost: ${why}`);
  }

  /**
   * Reclaims stale leases in the background. While some remain (a container still runs with
   * them), passes back off from 5 s to 10 min: each pass reads every process's mount table.
   * Stops once none remain, or when this process cannot see containers at all.
   */
  sweep(target: SweepTarget, restart = false): void {
    if (restart) {
      this.delay = this.firstMs;
      clearTimeout(this.sweeper);
      this.sweeper = undefined;
    }
    if (this.sweeper) return;
    const pass = async () => {
      this.sweeper = undefined;
      let left = 0;
      for (const v of [...target.volumes()]) {
        if (this.ids(v).length === 0) continue;
        const known = await target.locked(v, () => this.reclaim(v, target));
        if (known === false) return; // this process cannot see containers: asking again gains nothing
        if (this.ids(v).length > 0) left++;
      }
      this.deps.log.debug({ left, nextMs: left ? Math.min(this.delay * 2, MAX_PASS_MS) : null }, 'stale mount sweep pass');
      if (left === 0) return;
      this.delay = Math.min(this.delay * 2, MAX_PASS_MS);
      this.schedule(pass);
    };
    this.schedule(pass);
  }

  private schedule(pass: () => Promise<void>): void {
    this.sweeper = setTimeout(() => void pass().catch((err) => this.deps.log.error({ err: describe(err) }, 'stale mount sweep failed')), this.delay);
    this.sweeper.unref();
  }

  stop(): void {
    clearTimeout(this.sweeper);
    this.sweeper = undefined;
  }
}
