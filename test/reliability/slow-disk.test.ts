// Group 8: a slow disk under the store. Every fsync of the state directory takes 200 ms longer (an
// LD_PRELOAD shim in the hostvol child). One client keeps writing (Create, Mount, Unmount, Remove);
// the others ask Get/List/Path about other volumes that already exist, which need no disk at all.
// dockerd calls Get/List/Path constantly (every `docker volume ls`, every container start), so a slow
// commit must not stall them: their p99 stays ≤ 10 ms, nothing fails, and the writes still complete
// durably (each one waits for an fsync, and a restart after SIGKILL shows exactly what was answered).
import * as fs from 'node:fs';
import { Client, isOk, TransportError, type Reply } from './lib/client';
import { Invariants, pick, recordFigures } from './lib/figures';
import { Sandbox } from './lib/sandbox';
import { Serve, requireBuild, sleep, type ServeConfig } from './lib/serve';
import { buildShim, delayedCalls, slowFsyncEnv, type SlowFsync } from './lib/slowfsync';
import { summarize } from './lib/violations';

const DELAY_MS = 200;
const P99_LIMIT_MS = 10;
const MEASURE_MS = pick(20_000, 120_000);
/** Reads with no writer first: on a busy machine this tells CPU contention from waiting for a commit. */
const BASELINE_MS = pick(4_000, 20_000);
const READERS = 3;
const EXISTING = 20;

const inv = new Invariants();
const started = Date.now();
type Kind = 'Get' | 'List' | 'Path';
const KINDS: Kind[] = ['Get', 'List', 'Path'];
const latencies: Record<Kind, number[]> = { Get: [], List: [], Path: [] };
const baseline: number[] = [];
const writes = { answered: 0, cycles: 0, fastest: Infinity };
let fsyncs = 0;
let sb: Sandbox;
let serve: Serve | undefined;

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] : NaN;
};
const fmt = (xs: number[]) => `p50 ${quantile(xs, 0.5).toFixed(1)} ms, p99 ${quantile(xs, 0.99).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms (${xs.length})`;

afterAll(async () => {
  await serve?.kill();
  recordFigures('slow-disk', {
    title: '9. slow fsync under the store',
    durationMs: Date.now() - started,
    checks: inv.checks,
    violations: inv.violations.length,
    requests: writes.answered + Object.values(latencies).reduce((n, xs) => n + xs.length, 0),
    clients: READERS + 1,
    notes:
      `fsync of the state dir delayed ${DELAY_MS} ms (${fsyncs} delayed calls); ${writes.cycles} Create/Mount/Unmount/Remove cycles, ` +
      `fastest write ${writes.fastest.toFixed(0)} ms; reads while writing: ` +
      `${KINDS.map((k) => `${k} ${fmt(latencies[k])}`).join('; ')}; the same reads with no writer: ${fmt(baseline)}`,
  });
  sb?.cleanup();
}, 30_000);

/** One request, timed; a transport failure or an Err is a violation (nothing may fail here). */
async function timed(what: string, call: () => Promise<Reply>): Promise<{ ms: number; reply?: Reply }> {
  const t0 = process.hrtime.bigint();
  let reply: Reply | undefined;
  try {
    reply = await call();
  } catch (err) {
    inv.check(!(err instanceof TransportError), () => `${what}: no reply (${(err as Error).message})`);
    if (!(err instanceof TransportError)) throw err;
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (reply) inv.check(isOk(reply), () => `${what} failed: ${reply!.text.slice(0, 300)}`);
  return { ms, reply };
}

/** A reader like dockerd's `docker volume ls`/inspect callers: Get, List and Path in turn, timed. */
async function reader(socket: string, existing: string[], r: number, going: () => boolean, into: Record<Kind, number[]>): Promise<void> {
  const c = new Client(socket, 2);
  for (let i = 0; going(); i++) {
    const name = existing[(i * READERS + r) % existing.length];
    const kind = KINDS[(i + r) % 3];
    const { ms } = await timed(`${kind} ${name}`, () =>
      kind === 'List' ? c.list() : kind === 'Get' ? c.get(name) : c.post('/VolumeDriver.Path', { Name: name }));
    into[kind].push(ms);
    // dockerd's callers are not a tight loop; a short pause also keeps the 2 CPUs for the server.
    await sleep(2);
  }
  await c.close();
}

test(`with every store fsync ${DELAY_MS} ms slow, Get/List/Path of other volumes keep p99 ≤ ${P99_LIMIT_MS} ms while writes complete`, async () => {
  requireBuild();
  sb = new Sandbox('slowdisk');
  const slow: SlowFsync = {
    shim: buildShim(sb.path('build')),
    delayMs: DELAY_MS,
    pathPrefix: fs.realpathSync(sb.dir('state')),
    countFile: sb.path('fsync-count'),
  };
  const cfg: ServeConfig = {
    socket: sb.path('hostvol.sock'), dataRoot: sb.path('data'), stateDir: slow.pathPrefix,
    bootIdFile: sb.bootId(), logFile: sb.path('hostvol.log'),
  };
  // The volumes the readers ask about exist before the disk turns slow.
  serve = await Serve.start(cfg);
  const existing = Array.from({ length: EXISTING }, (_, i) => `existing-${i}`);
  for (const [i, name] of existing.entries()) await serve.client.ok('/VolumeDriver.Create', { Name: name, Opts: i % 2 ? { ro: '' } : null });
  await serve.kill('SIGTERM');
  serve = await Serve.start({ ...cfg, env: slowFsyncEnv(slow) }, 60_000);

  let baselining = true;
  const base = Array.from({ length: READERS }, (_, r) => reader(cfg.socket, existing, r, () => baselining, { Get: baseline, List: baseline, Path: baseline }));
  await sleep(BASELINE_MS);
  baselining = false;
  await Promise.all(base);

  let writing = true;
  const writer = (async () => {
    const c = new Client(cfg.socket, 4);
    for (let i = 0; writing; i++) {
      const name = `written-${i}`;
      for (const [what, call] of [
        ['Create', () => c.create(name, i % 2 ? { ro: '' } : null)],
        ['Mount', () => c.mount(name, `id-${i}`)],
        ['Unmount', () => c.unmount(name, `id-${i}`)],
        ['Remove', () => c.remove(name)],
      ] as const) {
        const { ms, reply } = await timed(`${what} ${name}`, call);
        if (!reply || !isOk(reply)) break;
        writes.answered++;
        writes.fastest = Math.min(writes.fastest, ms);
        // A durable answer waited for an fsync that began after the request came in, and each takes DELAY_MS.
        inv.check(ms >= DELAY_MS, () => `${what} ${name} was answered in ${ms.toFixed(1)} ms, before any ${DELAY_MS} ms fsync could finish: not durable`);
      }
      writes.cycles++;
    }
    await c.close();
  })();
  const readers = Array.from({ length: READERS }, (_, r) => reader(cfg.socket, existing, r, () => writing, latencies));
  await sleep(MEASURE_MS);
  writing = false;
  await Promise.all([writer, ...readers]);
  fsyncs = delayedCalls(slow);

  inv.check(fsyncs > 0, 'the shim delayed no fsync: LD_PRELOAD did not reach the store, the test proved nothing');
  inv.check(writes.cycles >= 3, () => `only ${writes.cycles} write cycles completed in ${MEASURE_MS} ms`);
  for (const kind of KINDS) {
    const p99 = quantile(latencies[kind], 0.99);
    inv.check(p99 <= P99_LIMIT_MS, () =>
      `${kind} p99 ${p99.toFixed(1)} ms > ${P99_LIMIT_MS} ms while the store fsyncs slowly: ${fmt(latencies[kind])} (with no writer: ${fmt(baseline)})`);
  }
  // What was answered is what a restart finds: the existing volumes, and none of the written ones.
  await serve.kill('SIGKILL');
  serve = await Serve.start(cfg);
  const names = await serve.client.names();
  inv.check(JSON.stringify(names) === JSON.stringify([...existing].sort()), () => `after a restart List shows ${names.join(' ')}`);
  if (inv.violations.length) throw new Error(`${writes.cycles} write cycles:\n${summarize(inv.violations)}`);
}, pick(90_000, 300_000));
