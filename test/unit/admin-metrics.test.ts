// GET /metrics: Prometheus text with plugin requests by endpoint and outcome, volumes, leases, store
// commit and mount latency, and the archive byte counters; optionally on TCP, serving nothing else.
import * as http from 'node:http';
import { createMetrics, timedStore } from '../../src/admin/metrics';
import { parseAddress } from '../../src/admin/serve';
import type { Store } from '../../src/store/store';
import { useAdminSandbox, type Admin } from './admin-support';
import type { Sandbox } from './support';

let sb: Sandbox;
let admin: Admin;
useAdminSandbox((s, a) => ((sb = s), (admin = a)), { config: { metricsAddress: '127.0.0.1:0' } });

async function scrape(): Promise<string> {
  const res = await admin.client.request('GET', '/metrics');
  expect(res.statusCode).toBe(200);
  expect(String(res.headers['content-type'])).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.body.text();
}

/** The value of one sample line, e.g. value(text, 'hostvol_leases'); undefined when absent. */
function value(text: string, sample: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

test('plugin requests are counted by endpoint and outcome, volumes and leases are gauged', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'met-a' });
  await sb.call('/VolumeDriver.Mount', { Name: 'met-a', ID: 'one' });
  await sb.call('/VolumeDriver.Mount', { Name: 'met-a', ID: 'two' });
  await sb.call('/VolumeDriver.Get', { Name: 'met-none' });
  const text = await scrape();
  expect(value(text, 'hostvol_plugin_requests_total{endpoint="/VolumeDriver.Create",outcome="ok"}')).toBe(1);
  expect(value(text, 'hostvol_plugin_requests_total{endpoint="/VolumeDriver.Mount",outcome="ok"}')).toBe(2);
  expect(value(text, 'hostvol_plugin_requests_total{endpoint="/VolumeDriver.Get",outcome="error"}')).toBe(1);
  expect(value(text, 'hostvol_plugin_request_seconds_count{endpoint="/VolumeDriver.Mount",outcome="ok"}')).toBe(2);
  expect(value(text, 'hostvol_volumes{state="ready"}')).toBe(1);
  expect(value(text, 'hostvol_leases')).toBe(2);
  // One bind for the first mount (the second reuses it), each store change timed until durable.
  expect(value(text, 'hostvol_mount_seconds_count{outcome="ok"}')).toBe(1);
  expect(value(text, 'hostvol_store_commit_seconds_count{op="setLease",outcome="ok"}')).toBe(2);
  expect(value(text, 'hostvol_store_commit_seconds_count{op="insertVolume",outcome="ok"}')).toBe(1);
  expect(value(text, 'hostvol_export_bytes_total')).toBe(0);
  expect(value(text, 'hostvol_import_bytes_total')).toBe(0);
  await sb.call('/VolumeDriver.Unmount', { Name: 'met-a', ID: 'one' });
  expect(value(await scrape(), 'hostvol_leases')).toBe(1);
});

test('--metrics-address serves GET /metrics on TCP and nothing else', async () => {
  const addr = sb.daemon.admin!.metrics!.address() as { address: string; port: number };
  expect(addr.address).toBe('127.0.0.1');
  const get = (p: string, method = 'GET') =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      http.request({ host: addr.address, port: addr.port, path: p, method }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c)).on('end', () => resolve({ status: res.statusCode!, text }));
      }).on('error', reject).end();
    });
  const metrics = await get('/metrics');
  expect(metrics.status).toBe(200);
  expect(metrics.text).toContain('hostvol_leases');
  expect(await get('/volumes')).toEqual({ status: 404, text: JSON.stringify({ Err: 'this listener serves only GET /metrics' }) });
  expect((await get('/prune', 'POST')).status).toBe(404);
});

test('a metrics address is HOST:PORT, [v6]:PORT or :PORT, anything else names the flag', () => {
  expect(parseAddress('127.0.0.1:9105')).toEqual({ host: '127.0.0.1', port: 9105 });
  expect(parseAddress('[::1]:9105')).toEqual({ host: '::1', port: 9105 });
  expect(parseAddress(':9105')).toEqual({ host: undefined, port: 9105 });
  expect(() => parseAddress('9105')).toThrow(/--metrics-address "9105" is not HOST:PORT/);
  expect(() => parseAddress('h:70000')).toThrow(/not HOST:PORT/);
});

test('request latencies are counted in fixed buckets, exposed cumulatively with _sum and _count', async () => {
  const m = createMetrics();
  for (const s of [0.0004, 0.0007, 0.0007, 0.02, 20]) m.observeRequest('/VolumeDriver.Get', 'ok', s);
  m.observeRequest('/VolumeDriver.Get', 'error', 0.003);
  const text = await m.registry.metrics();
  const ok = (le: string) => value(text, `hostvol_plugin_request_seconds_bucket{endpoint="/VolumeDriver.Get",outcome="ok",le="${le}"}`);
  expect([ok('0.0005'), ok('0.001'), ok('0.01'), ok('0.025'), ok('10'), ok('+Inf')]).toEqual([1, 3, 3, 4, 4, 5]);
  expect(value(text, 'hostvol_plugin_request_seconds_count{endpoint="/VolumeDriver.Get",outcome="ok"}')).toBe(5);
  expect(value(text, 'hostvol_plugin_request_seconds_sum{endpoint="/VolumeDriver.Get",outcome="ok"}')).toBeCloseTo(20.0218, 6);
  expect(value(text, 'hostvol_plugin_requests_total{endpoint="/VolumeDriver.Get",outcome="error"}')).toBe(1);
  expect(value(text, 'hostvol_plugin_request_seconds_bucket{endpoint="/VolumeDriver.Get",outcome="error",le="0.0025"}')).toBe(0);
  expect(value(text, 'hostvol_plugin_request_seconds_bucket{endpoint="/VolumeDriver.Get",outcome="error",le="0.005"}')).toBe(1);
  expect(text).toContain('# TYPE hostvol_plugin_request_seconds histogram');
});

test('the store proxy times changes and passes everything else to the store, bound to it', async () => {
  const m = createMetrics();
  const calls: string[] = [];
  const store = {
    scope: 'local',
    health() { return { available: this === store }; },
    async setLease() { calls.push('setLease'); },
    async setState() { throw new Error('disk full'); },
  } as unknown as Store;
  const timed = timedStore(store, m);
  expect(timed.health()).toEqual({ available: true });
  expect(timed.health).toBe(timed.health); // bound once, not on every Get
  expect(timed.scope).toBe('local');
  await timed.setLease({} as never);
  await expect(timed.setState('v', 'ready')).rejects.toThrow('disk full');
  expect(calls).toEqual(['setLease']);
  const text = await m.registry.metrics();
  expect(value(text, 'hostvol_store_commit_seconds_count{op="setLease",outcome="ok"}')).toBe(1);
  expect(value(text, 'hostvol_store_commit_seconds_count{op="setState",outcome="error"}')).toBe(1);
});
