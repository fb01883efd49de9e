// The daemon's metrics as plain tallies: counts per fixed latency bucket, by label values. Recording
// one is a Map lookup and a few additions, on every plugin request; nothing here loads prom-client,
// so the plugin socket answers dockerd without it. The admin API loads prom-client (exposition.ts)
// when it serves GET /metrics, reading these tallies. Each daemon has its own (the unit tests run
// several in one process without their counts mixing).
import type { Registry } from 'prom-client';
import type { Mounter } from '../host/mounter';
import type { Store } from '../store/store';
import type { Driver } from '../volumes/driver';

export type Outcome = 'ok' | 'error';

/** Upper bounds (seconds) of the latency buckets: the same for every histogram. */
export const BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One label set's observations: `buckets[i]` counts those ≤ BUCKETS[i] and > BUCKETS[i-1] (not cumulative). */
export interface Series {
  labels: Readonly<Record<string, string>>;
  buckets: number[];
  sum: number;
  count: number;
}

/** A histogram's tally: one Series per combination of label values seen so far. */
export class Tally {
  private readonly byKey = new Map<string, Series>();

  constructor(readonly labelNames: readonly string[]) {}

  /** `values` in the order of labelNames. */
  observe(values: readonly string[], seconds: number): void {
    const key = values.length === 1 ? values[0] : values.join('\0');
    let s = this.byKey.get(key);
    if (s === undefined) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i]));
      s = { labels: Object.freeze(labels), buckets: new Array<number>(BUCKETS.length).fill(0), sum: 0, count: 0 };
      this.byKey.set(key, s);
    }
    s.count++;
    s.sum += seconds;
    // Above the last bound it counts only in +Inf, which is `count`.
    for (let i = 0; i < BUCKETS.length; i++) {
      if (seconds <= BUCKETS[i]) {
        s.buckets[i]++;
        break;
      }
    }
  }

  series(): IterableIterator<Series> {
    return this.byKey.values();
  }
}

/** A counter without labels. */
export class Total {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

export interface Metrics {
  /** Plugin-socket requests by endpoint (e.g. /VolumeDriver.Mount) and outcome. */
  requestSeconds: Tally;
  /** Time for a store change to become durable, by store method (op) and outcome. */
  storeCommitSeconds: Tally;
  /** Time to bind-mount a volume for a container, by outcome. */
  mountSeconds: Tally;
  /** Archive traffic, incremented by the export and import routes. */
  exportBytes: Total;
  importBytes: Total;
  /** The plugin server calls this once per request it answered. */
  observeRequest(endpoint: string, outcome: Outcome, seconds: number): void;
  /** Where the volume and lease gauges read from. */
  watch(ready: Promise<Driver>): void;
  /** The driver once it is ready; undefined before (the gauges then show no volumes). */
  readonly driver: Driver | undefined;
  /** These metrics as a prom-client registry: built, and prom-client loaded, on first use (a scrape). */
  readonly registry: Registry;
}

export function createMetrics(): Metrics {
  let driver: Driver | undefined;
  let registry: Registry | undefined;
  const requestSeconds = new Tally(['endpoint', 'outcome']);
  const m: Metrics = {
    requestSeconds,
    storeCommitSeconds: new Tally(['op', 'outcome']),
    mountSeconds: new Tally(['outcome']),
    exportBytes: new Total(),
    importBytes: new Total(),
    observeRequest(endpoint, outcome, seconds) {
      requestSeconds.observe([endpoint, outcome], seconds);
    },
    watch(ready) {
      ready.then((d) => (driver = d), () => undefined);
    },
    get driver() {
      return driver;
    },
    get registry() {
      // Required here, not imported: prom-client costs ~0.1 s to load, which start-up must not pay.
      registry ??= (require('./exposition') as typeof import('./exposition')).createRegistry(m);
      return registry;
    },
  };
  return m;
}

/** Times `fn` into `tally` with `values` and then the outcome, passing its result or error through. */
async function timed<T>(tally: Tally, values: readonly string[], fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    const out = await fn();
    tally.observe([...values, 'ok'], (performance.now() - started) / 1000);
    return out;
  } catch (err) {
    tally.observe([...values, 'error'], (performance.now() - started) / 1000);
    throw err;
  }
}

const CHANGES = ['insertVolume', 'setState', 'deleteVolume', 'setLease', 'setGeneration', 'dropLeasesFromOtherBoots'] as const;

/**
 * The same store, with every change timed until it is durable (what the store's promises mean).
 * Everything else (scope, load, watch, health, close) is the store's own, called on the store itself.
 */
export function timedStore(store: Store, m: Metrics): Store {
  const own = new Map<PropertyKey, unknown>();
  for (const op of CHANGES) {
    const fn = store[op] as (...a: unknown[]) => Promise<unknown>;
    own.set(op, (...a: unknown[]) => timed(m.storeCommitSeconds, [op], () => fn.apply(store, a)));
  }
  return new Proxy(store, {
    get(target, prop) {
      if (own.has(prop)) return own.get(prop);
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      // Bound once per method: Get asks for store.health() on every request.
      const bound = (value as (...a: unknown[]) => unknown).bind(target);
      own.set(prop, bound);
      return bound;
    },
  });
}

/** The same mounter, with each bind timed. */
export function timedMounter(mounter: Mounter, m: Metrics): Mounter {
  // Both ways a Mount binds: a directory already open (after relabelling) or walked to in the same job.
  return {
    ...mounter,
    bind: (fd, target, readOnly) => timed(m.mountSeconds, [], () => mounter.bind(fd, target, readOnly)),
    bindBeneath: (root, rel, target, readOnly) => timed(m.mountSeconds, [], () => mounter.bindBeneath(root, rel, target, readOnly)),
  };
}
