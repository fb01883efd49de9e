// The daemon's metrics in Prometheus text, through prom-client: loaded by the admin API on the first
// scrape, never on dockerd's start-up path. The histograms are read from the tallies the request path
// keeps (metrics.ts); the gauges of volumes and leases are read from the driver when scraped, so they
// can never drift from what the driver holds.
import { Counter, Gauge, Registry, type Metric } from 'prom-client';
import { BUCKETS, type Metrics, type Tally, type Total } from './metrics';

/** A registry serving `m`; one per daemon. */
export function createRegistry(m: Metrics): Registry {
  const registry = new Registry();
  registerHistogram(registry, 'hostvol_plugin_request_seconds', 'Volume plugin request latency, by endpoint and outcome', m.requestSeconds);
  new Counter({
    name: 'hostvol_plugin_requests_total', help: 'Volume plugin requests answered, by endpoint and outcome',
    labelNames: m.requestSeconds.labelNames, registers: [registry],
    collect() {
      this.reset();
      for (const s of m.requestSeconds.series()) this.inc(s.labels, s.count);
    },
  });
  registerHistogram(registry, 'hostvol_store_commit_seconds', 'Time until a store change is durable, by operation', m.storeCommitSeconds);
  registerHistogram(registry, 'hostvol_mount_seconds', 'Time to bind-mount a volume directory', m.mountSeconds);
  counterOf(registry, 'hostvol_export_bytes_total', 'Bytes of archive written by export', m.exportBytes);
  counterOf(registry, 'hostvol_import_bytes_total', 'Bytes of archive read by import', m.importBytes);
  new Gauge({
    name: 'hostvol_volumes', help: 'Volumes hostvol holds, by state', labelNames: ['state'] as const, registers: [registry],
    collect() {
      this.reset();
      if (!m.driver) return;
      const by: Record<string, number> = { creating: 0, ready: 0, removing: 0 };
      for (const v of m.driver.volumes.values()) by[v.state]++;
      for (const [state, n] of Object.entries(by)) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'hostvol_leases', help: 'Active mount leases (one per dockerd mount ID)', registers: [registry],
    collect() {
      let n = 0;
      if (m.driver) for (const v of m.driver.volumes.values()) n += v.leases.size;
      this.set(n);
    },
  });
  return registry;
}

function counterOf(registry: Registry, name: string, help: string, total: Total): void {
  new Counter({
    name, help, registers: [registry],
    collect() {
      this.reset();
      this.inc(total.value);
    },
  });
}

/**
 * A histogram whose samples come from a tally. prom-client's Histogram can only be fed one
 * observation at a time, so this is a metric of the shape its registry reads (name, help, type and
 * get() with the sample values): cumulative _bucket counts with `le`, then _sum and _count.
 */
function registerHistogram(registry: Registry, name: string, help: string, tally: Tally): void {
  const get = async () => {
    const values: Array<{ labels: Record<string, string>; value: number; metricName: string }> = [];
    for (const s of tally.series()) {
      let cumulative = 0;
      BUCKETS.forEach((bound, i) => {
        cumulative += s.buckets[i];
        values.push({ labels: { ...s.labels, le: String(bound) }, value: cumulative, metricName: `${name}_bucket` });
      });
      values.push(
        { labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: `${name}_bucket` },
        { labels: { ...s.labels }, value: s.sum, metricName: `${name}_sum` },
        { labels: { ...s.labels }, value: s.count, metricName: `${name}_count` },
      );
    }
    return { name, help, type: 'histogram' as const, values, aggregator: 'sum' as const };
  };
  registry.registerMetric({ name, help, type: 'histogram', aggregator: 'sum', get } as unknown as Metric);
}
