// Issue 5, group 3: hostile input. Thousands of generated requests (fast-check): random bytes,
// non-JSON, JSON of wrong types, missing fields, huge strings, deep nesting, bodies over the 64kb
// limit, names with "..", "/", NUL, unicode, 300 characters, options with odd keys and values, odd
// methods, headers and paths, and broken HTTP. Every HTTP reply is 200 JSON with a valid result or
// Err, the process stays up, and nothing outside the data root and the allowed paths changes.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import fc from 'fast-check';
import { endpoints } from '../../src/plugin/protocol';
import { requestArbitrary, type FuzzDirs, type HttpReq, type RawReq } from './lib/fuzz-requests';
import { TransportError, parseHttpResponse, rawExchange, type Reply } from './lib/client';
import { Invariants, LONG, pick, recordFigures, seed } from './lib/figures';
import { Sandbox, diffSnapshots, inside, mountTable, plantDecoys, snapshot } from './lib/sandbox';
import { Serve, requireBuild, sleep, type ServeConfig } from './lib/serve';

const RUNS = pick(10_000, 100_000);
const SEED = seed();
const WORKERS = 8;

let sb: Sandbox;
let cfg: ServeConfig;
let serve: Serve;
let d: FuzzDirs;
const inv = new Invariants();
const started = Date.now();
let fuzzed = 0;
const tally: Record<string, number> = {};

beforeAll(async () => {
  requireBuild();
  sb = new Sandbox('fuzz');
  d = { data: sb.dir('a', 'b', 'data'), allow: sb.dir('allow'), state: sb.path('state'), outside: sb.dir('outside') };
  plantDecoys(d.outside);
  fs.mkdirSync(path.join(d.allow, 'sub'));
  fs.writeFileSync(path.join(d.allow, 'file'), 'a file, not a directory\n');
  fs.symlinkSync(d.outside, path.join(d.allow, 'link-out'));
  fs.symlinkSync(path.join(d.allow, 'sub'), path.join(d.allow, 'link-in'));
  fs.symlinkSync(path.join(d.outside, 'nonexistent'), path.join(d.allow, 'dangling'));
  cfg = {
    socket: sb.path('run', 'hostvol.sock'),
    dataRoot: d.data,
    stateDir: d.state,
    allowPaths: [d.allow],
    bootIdFile: sb.bootId(),
    logFile: sb.path('hostvol.log'),
  };
  serve = await Serve.start(cfg);
}, 30_000);

afterAll(async () => {
  await serve?.kill();
  recordFigures('fuzz', {
    title: '3. hostile input (fuzz)',
    seed: SEED,
    durationMs: Date.now() - started,
    checks: inv.checks,
    violations: inv.violations.length,
    requests: fuzzed,
    notes: notes(),
  });
  sb?.cleanup();
}, 30_000);

/** The fuzz figures in one readable line for RELIABILITY.md. */
function notes(): string {
  const t = (k: string) => tally[k] ?? 0;
  const kinds = ['shaped', 'json-any', 'bytes', 'text', 'deep', 'huge', 'oversize', 'headers', 'method', 'raw'];
  return (
    `${t('ok')} valid results and ${t('err')} Err replies; by kind: ${kinds.map((k) => `${k} ${t(k)}`).join(', ')}; ` +
    `broken HTTP answered 400/431 by Node's parser ${t('raw: HTTP 400') + t('raw: HTTP 431')}, closed without reply ${t('raw: closed without reply')}; ` +
    `${t('volumes')} volumes made; RSS growth while 256 MB oversize bodies streamed: ${t('rss-Content-Length')} KiB (Content-Length), ${t('rss-chunked')} KiB (chunked)`
  );
}

// ---- checks -------------------------------------------------------------------------------------

/** The reply to one HTTP request: 200, JSON, and either the endpoint's success shape or a short Err. */
function checkReply(req: HttpReq, r: Reply): void {
  const what = () => `${req.kind} ${req.method} ${req.route.slice(0, 80)} ${String(req.body).slice(0, 200)} → HTTP ${r.status} ${r.text.slice(0, 300)}`;
  if (!inv.check(r.status === 200, () => `not HTTP 200: ${what()}`)) return;
  if (!inv.check(/application\/json/.test(r.contentType) && r.json !== undefined, () => `not JSON: ${what()}`)) return;
  const err = r.json && typeof r.json === 'object' && 'Err' in r.json;
  if (err) {
    inv.check(typeof r.json.Err === 'string' && r.json.Err.length > 0 && Object.keys(r.json).length === 1, () => `malformed Err: ${what()}`);
    // Hostile input is never echoed back in full.
    inv.check(r.json.Err.length < 2000, () => `Err of ${r.json.Err.length} characters: ${what()}`);
    if (req.mustErr) inv.check(req.mustErr.test(r.json.Err), () => `Err does not match ${req.mustErr}: ${what()}`);
    tally.err = (tally.err ?? 0) + 1;
    return;
  }
  if (!inv.check(!req.mustErr, () => `must be refused: ${what()}`)) return;
  // Express routes ignore case and a trailing slash.
  const route = Object.keys(endpoints).find((k) => k.toLowerCase() === req.route.split('?')[0].replace(/\/$/, '').toLowerCase());
  const spec = endpoints[route as keyof typeof endpoints];
  if (!inv.check(spec !== undefined && spec.response.safeParse(r.json).success, () => `reply does not match the endpoint's schema: ${what()}`)) return;
  tally.ok = (tally.ok ?? 0) + 1;
  const mp: string | undefined = r.json.Mountpoint ?? r.json.Volume?.Mountpoint;
  if (mp) inv.check(confined(mp) || inside(mp, path.join(d.state, 'mounts')), () => `Mountpoint outside the allowed paths: ${what()}`);
  if (r.json.Volume) inv.check(confined(r.json.Volume.Status.path), () => `volume directory outside the allowed paths: ${what()}`);
}

function confined(p: string): boolean {
  return [d.data, d.allow].some((root) => inside(p, root)) && fs.realpathSync(path.dirname(p)) === path.dirname(p);
}

async function send(req: HttpReq | RawReq): Promise<void> {
  fuzzed++;
  tally[req.kind] = (tally[req.kind] ?? 0) + 1;
  if (req.kind === 'raw') {
    const res = await rawExchange(cfg.socket, req.bytes, { idleMs: 50, maxMs: 3000 });
    const parsed = parseHttpResponse(res.data);
    if (res.data.length === 0) {
      tally['raw: closed without reply'] = (tally['raw: closed without reply'] ?? 0) + 1;
      return;
    }
    // Node's HTTP parser answers what is not HTTP with 400 and closes; anything Express answers is 200 JSON.
    const ok = parsed && (parsed.status === 400 || parsed.status === 431 || (parsed.status === 200 && /application\/json/.test(parsed.headers['content-type'] ?? '')));
    inv.check(!!ok, () => `raw ${JSON.stringify(req.bytes.toString('latin1').slice(0, 200))} → ${res.data.toString('latin1').slice(0, 300)}`);
    if (parsed && parsed.status !== 200) tally[`raw: HTTP ${parsed.status}`] = (tally[`raw: HTTP ${parsed.status}`] ?? 0) + 1;
    return;
  }
  try {
    const r = await serve.client.post(req.route, req.body, { method: req.method, headers: req.headers, timeoutMs: 30_000 });
    checkReply(req, r);
  } catch (err) {
    if (!(err instanceof TransportError)) throw err;
    // An oversize body may be cut off while it is still being sent: the reply was sent, the socket closed.
    inv.check(req.mustErr !== undefined && /larger/.test(String(req.mustErr)) && serve.alive(), () => `${req.kind} ${req.route}: no reply (${err.message})`);
  }
}

test(`${RUNS} generated requests: every reply 200 JSON, process up, nothing outside changed (seed ${SEED})`, async () => {
  const before = snapshot(sb.root, [d.data, d.allow, d.state, cfg.logFile]);
  const reqs = fc.sample(requestArbitrary(d), { seed: SEED, numRuns: RUNS });
  let next = 0;
  const worker = async () => {
    while (next < reqs.length) {
      const i = next++;
      await send(reqs[i]);
      if (i % 1000 === 999) {
        inv.check(serve.alive(), `hostvol died after request ${i}`);
        const l = await serve.client.list();
        inv.check(l.status === 200 && Array.isArray(l.json?.Volumes), () => `List fails after request ${i}: ${l.text}`);
      }
      if (inv.violations.length > 20 || !serve.alive()) return;
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
  inv.check(serve.alive(), () => `hostvol is not running:\n${serve.logTail()}`);
  const volumes = (await serve.client.ok('/VolumeDriver.List', {})).Volumes as { Name: string }[];
  for (const v of volumes) {
    const g = await serve.client.get(v.Name);
    inv.check(g.json?.Volume?.Name === v.Name && confined(g.json.Volume.Status.path), () => `listed volume ${v.Name}: ${g.text}`);
  }
  tally.volumes = volumes.length;
  const diff = diffSnapshots(before, snapshot(sb.root, [d.data, d.allow, d.state, cfg.logFile]));
  inv.check(diff.length === 0, () => `changed outside the data root and allowed paths:\n${diff.slice(0, 20).join('\n')}`);
  const stray = mountTable().filter((m) => inside(m.target, sb.root) && !inside(m.target, path.join(d.state, 'mounts')));
  inv.check(stray.length === 0, () => `mounts outside hostvol's mount directory: ${stray.map((m) => m.target)}`);
  if (process.env.RELIABILITY_DEBUG) console.log(tally);
  inv.assertNone(`seed ${SEED}; replay with RELIABILITY_SEED=${SEED}`);
}, LONG ? 1_800_000 : 120_000);

/** Resident memory of a process in KiB. */
function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Streams `total` bytes as one request body while sampling the server's memory; resolves with the reply. */
function streamBody(total: number, chunked: boolean): Promise<{ reply: string; growthKb: number }> {
  return new Promise((resolve, reject) => {
    const base = rssKb(serve.pid);
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, rssKb(serve.pid))), 10);
    const s = net.connect(cfg.socket);
    let reply = '';
    const done = () => {
      clearTimeout(timer);
      clearInterval(sampler);
      s.destroy();
      resolve({ reply, growthKb: peak - base });
    };
    s.on('connect', async () => {
      s.write(`POST /VolumeDriver.Create HTTP/1.1\r\nHost: x\r\n${chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${total}`}\r\n\r\n`);
      const chunk = Buffer.alloc(256 * 1024, 0x61);
      for (let sent = 0; sent < total && !s.destroyed; sent += chunk.length) {
        const ok = chunked ? (s.write(`${chunk.length.toString(16)}\r\n`), s.write(chunk), s.write('\r\n')) : s.write(chunk);
        if (!ok) await new Promise((r) => s.once('drain', r));
      }
      if (chunked && !s.destroyed) s.write('0\r\n\r\n');
    });
    s.on('data', (c) => {
      reply += c;
      if (reply.includes('}')) done();
    });
    s.on('error', reject);
    const timer = setTimeout(done, 30_000);
  });
}

test('bodies over the 64kb limit are refused with Err and never buffered (Content-Length and chunked)', async () => {
  // body-parser reads the rest of an oversize body and throws it away before answering; what matters
  // is that memory stays bounded (garbage, not a copy) while 256 MB stream through.
  const total = 256 * 1024 * 1024;
  for (const chunked of [false, true]) {
    const { reply, growthKb } = await streamBody(total, chunked);
    fuzzed++;
    const how = chunked ? 'chunked' : 'Content-Length';
    inv.check(/^HTTP\/1\.1 200/.test(reply) && reply.includes('"Err":"request body is larger than the 64kb limit"'), () => `${how} 256 MB: ${reply.slice(0, 300)}`);
    inv.check(growthKb < total / 1024 / 4, () => `${how} 256 MB: hostvol grew by ${growthKb} KiB while the body streamed (buffered?)`);
    tally[`rss-${how}`] = growthKb;
  }
  inv.check(serve.alive() && (await serve.client.list()).status === 200, 'hostvol does not answer after oversize bodies');
  inv.assertNone();
}, 90_000);

test('odd but valid Mount IDs survive a restart exactly; IDs that the store cannot keep are refused', async () => {
  const c = serve.client;
  await c.ok('/VolumeDriver.Create', { Name: 'ids', Opts: null });
  // Lone surrogates would be stored as U+FFFD: two different IDs would read back as one after a
  // restart, and the lease of the other could never be unmounted (Remove blocked forever).
  for (const id of ['\ud800', 'x\udbff', '\udc00y']) {
    fuzzed++;
    const r = await c.mount('ids', id);
    inv.check(r.status === 200 && /Mount ID that is not valid Unicode/.test(r.json?.Err ?? ''), () => `Mount ID ${JSON.stringify(id)}: ${r.text}`);
  }
  const odd = ['a\0b', 'a\0c', '😀', 'é', ' ', 'x'.repeat(10_000), '../..', '\n'];
  for (const id of odd) await c.ok('/VolumeDriver.Mount', { Name: 'ids', ID: id });
  fuzzed += odd.length;
  await serve.kill();
  serve = await Serve.start(cfg);
  const st = (await serve.client.ok('/VolumeDriver.Get', { Name: 'ids' })).Volume.Status;
  inv.check(st.mounts === odd.length, () => `after restart: ${st.mounts} mounts, ${odd.length} IDs mounted`);
  for (const id of odd) await serve.client.ok('/VolumeDriver.Unmount', { Name: 'ids', ID: id });
  const rm = await serve.client.remove('ids');
  inv.check(rm.status === 200 && rm.json && !('Err' in rm.json), () => `Remove after unmounting every ID: ${rm.text}`);
  inv.assertNone();
}, 60_000);
