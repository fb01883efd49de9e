// The daemon's Prometheus metrics (prom-client), in a registry of its own: several daemons can run in
// one process (the unit tests do) without their counters mixing. Gauges of volumes and leases are read
// from the driver when scraped, so they can never drift from what the driver holds.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Mounter } from '../host/mounter';
import type { Store } from '../store/store';
import type { Driver } from '../volumes/driver';

export type Outcome = 'ok' | 'error';

export interface Metrics {
  registry: Registry;
  /** Plugin-socket requests by endpoint (e.g. /VolumeDriver.Mount) and outcome. */
  requests: Counter<'endpoint' | 'outcome'>;
  requestSeconds: Histogram<'endpoint' | 'outcome'>;
  /** Time for a store change to become durable, by store method. */
  storeCommitSeconds: Histogram<'op' | 'outcome'>;
  /** Time to bind-mount a volume for a container. */
  mountSeconds: Histogram<'outcome'>;
  /** Archive traffic, incremented by the export and import routes. */
  exportBytes: Counter;
  importBytes: Counter;
  /** The plugin server calls this once per request it answered. */
  observeRequest(endpoint: string, outcome: Outcome, seconds: number): void;
  /** Where the volume and lease gauges read from. */
  watch(ready: Promise<Driver>): void;
}

const FAST = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createMetrics(): Metrics {
  const registry = new Registry();
  let driver: Driver | undefined;
  const requests = new Counter({
    name: 'hostvol_plugin_requests_total', help: 'Volume plugin requests answered, by endpoint and outcome',
    labelNames: ['endpoint', 'outcome'] as const, registers: [registry],
  });
  const requestSeconds = new Histogram({
    name: 'hostvol_plugin_request_seconds', help: 'Volume plugin request latency, by endpoint and outcome',
    labelNames: ['endpoint', 'outcome'] as const, buckets: FAST, registers: [registry],
  });
  const storeCommitSeconds = new Histogram({
    name: 'hostvol_store_commit_seconds', help: 'Time until a store change is durable, by operation',
    labelNames: ['op', 'outcome'] as const, buckets: FAST, registers: [registry],
  });
  const mountSeconds = new Histogram({
    name: 'hostvol_mount_seconds', help: 'Time to bind-mount a volume directory',
    labelNames: ['outcome'] as const, buckets: FAST, registers: [registry],
  });
  const exportBytes = new Counter({ name: 'hostvol_export_bytes_total', help: 'Bytes of archive written by export', registers: [registry] });
  const importBytes = new Counter({ name: 'hostvol_import_bytes_total', help: 'Bytes of archive read by import', registers: [registry] });
  new Gauge({
    name: 'hostvol_volumes', help: 'Volumes hostvol holds, by state', labelNames: ['state'] as const, registers: [registry],
    collect() {
      this.reset();
      if (!driver) return;
      const by: Record<string, number> = { creating: 0, ready: 0, removing: 0 };
      for (const v of driver.volumes.values()) by[v.state]++;
      for (const [state, n] of Object.entries(by)) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'hostvol_leases', help: 'Active mount leases (one per dockerd mount ID)', registers: [registry],
    collect() {
      let n = 0;
      if (driver) for (const v of driver.volumes.values()) n += v.leases.size;
      this.set(n);
    },
  });
  return {
    registry, requests, requestSeconds, storeCommitSeconds, mountSeconds, exportBytes, importBytes,
    observeRequest(endpoint, outcome, seconds) {
      requests.inc({ endpoint, outcome });
      requestSeconds.observe({ endpoint, outcome }, seconds);
    },
    watch(ready) {
      ready.then((d) => (driver = d), () => undefined);
    },
  };
}

/** Times `fn` into `h` with an outcome label, passing its result or error through. */
async function timed<T>(h: Histogram<'outcome'> | Histogram<'op' | 'outcome'>, labels: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const end = h.startTimer(labels as never);
  try {
    const out = await fn();
    end({ outcome: 'ok' } as never);
    return out;
  } catch (err) {
    end({ outcome: 'error' } as never);
    throw err;
  }
}

const CHANGES = ['insertVolume', 'setState', 'deleteVolume', 'setLease', 'setGeneration', 'dropLeasesFromOtherBoots'] as const;

/**
 * The same store, with every change timed until it is durable (what the store's promises mean).
 * Everything else (scope, load, watch, health, close) is the store's own, called on the store itself.
 */
export function timedStore(store: Store, m: Metrics): Store {
  const timedOps = new Map<PropertyKey, unknown>();
  for (const op of CHANGES) {
    const fn = store[op] as (...a: unknown[]) => Promise<unknown>;
    timedOps.set(op, (...a: unknown[]) => timed(m.storeCommitSeconds, { op }, () => fn.apply(store, a)));
  }
  return new Proxy(store, {
    get(target, prop) {
      if (timedOps.has(prop)) return timedOps.get(prop);
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** The same mounter, with each bind timed. */
export function timedMounter(mounter: Mounter, m: Metrics): Mounter {
  // Both ways a Mount binds: a directory already open (after relabelling) or walked to in the same job.
  return {
    ...mounter,
    bind: (fd, target, readOnly) => timed(m.mountSeconds, {}, () => mounter.bind(fd, target, readOnly)),
    bindBeneath: (root, rel, target, readOnly) => timed(m.mountSeconds, {}, () => mounter.bindBeneath(root, rel, target, readOnly)),
  };
}
