// What is measured: the load figures (each run against the floor and hostvol, interleaved, the
// order alternating per repetition, some with a second client alongside), start-up and peak RSS.
// Results are raw samples; report.ts takes the medians and targets.ts decides the targets.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runLoad, type LoadResult, type LoadSpec, type Work } from './loadgen';
import { GATES, readable, startupReadable } from './targets';
import { names, peakRssMb, start, volumeName, type Dataset, type Kind, type Running, type Server } from './servers';
import { fmt, median, quantile } from './stats';
import { okJson, oneRequest } from './wire';

export interface Figure {
  id: string;
  title: string;
  mode: LoadSpec['mode'];
  concurrency: number;
  durationMs: number;
  work: Work;
  /** Run at the same time by a second load generator (c=1); its result is kept under `${id}-bg`. */
  background?: Work;
  /** Also run against the off-loop floor (floor-offloop.ts), interleaved with the other two. */
  offloop?: boolean;
}

/** One figure's results per server; the off-loop floor's only for the figures it runs in. */
export type Runs = Record<Kind, LoadResult[]> & { offloop?: LoadResult[] };
/** The servers of one dataset: the off-loop floor only where the durable figures run. */
export type Servers = Record<Kind, Running> & { offloop?: Running };

export interface Samples {
  /** figure id → kind → one result per repetition */
  load: Record<string, Runs>;
  /** "0" or "100000" → kind → ms per repetition */
  startup: Record<string, Record<Kind, number[]>>;
  /** label → kind → MB */
  rss: Record<string, Record<Kind, number[]>>;
  /** label → kind → reply bytes (same size is the floor's contract) */
  replyBytes: Record<string, Record<Kind, number>>;
  /** One round trip to a worker thread, µs (p50): in a tight loop, and each after the thread idled (handoff.ts). */
  handoff?: { tightUs: number; idleUs: number; idleMs: number; n: number };
  /** This disk's cost of one durable commit: a 4 KiB append + fsync, ms. */
  fsync?: { p50: number; p90: number };
  /** The fsync-delay shim: what one fsync under its prefix took with it loaded, or why it was not run. */
  shim?: { fsyncMs: number; delayMs: number } | { notRun: string };
  /** figure id → how many repetitions it got (more than --reps when its target was unreadable). */
  reps: Record<string, number>;
}

export const emptySamples = (): Samples => ({ load: {}, startup: {}, rss: {}, replyBytes: {}, reps: {} });

/** 4 KiB append + fsync, 200 times, in `dir` (where the stores live): what each durable commit waits for. */
export function measureFsync(dir: string, out: Samples): void {
  const file = path.join(dir, 'fsync-probe');
  const fd = fs.openSync(file, 'w');
  const block = Buffer.alloc(4096, 1);
  const t: number[] = [];
  try {
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      fs.writeSync(fd, block);
      fs.fsyncSync(fd);
      t.push(performance.now() - t0);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  out.fsync = { p50: median(t), p90: quantile(t, 0.9) };
}

export interface Options {
  reps: number;
  /** Ceiling for the extra repetitions a figure gets while its target is unreadable. */
  maxReps: number;
  /** Scales every duration (0.5 for a quick look). */
  scale: number;
  log: (line: string) => void;
}

const WARMUP_MS = 250;
/** Every window holds at least this many measured operations (see LoadSpec.minOps). */
const MIN_OPS = 5;
export const LIST_BURST = 10;

export function getFigures(count: number): Figure[] {
  const get: Work = { kind: 'get', names: names(count) };
  return [
    { id: 'get-c1-ka', title: 'Get, c=1, keep-alive', mode: 'keepalive', concurrency: 1, durationMs: 1000, work: get },
    { id: 'get-c16-ka', title: 'Get, c=16, keep-alive', mode: 'keepalive', concurrency: 16, durationMs: 1000, work: get },
    { id: 'get-c1-new', title: 'Get, c=1, new connection per request', mode: 'newconn', concurrency: 1, durationMs: 1000, work: get },
    { id: 'get-c16-new', title: 'Get, c=16, new connection per request', mode: 'newconn', concurrency: 16, durationMs: 1000, work: get },
  ];
}

export function listFigure(count: number): Figure {
  return {
    id: `list-${count}`, title: `List, ${count.toLocaleString('en-US')} volumes, c=1`, mode: 'keepalive', concurrency: 1,
    durationMs: count >= 100_000 ? 3000 : 1000, work: { kind: 'list' },
  };
}

/** Create+Remove next to 100k volumes, against the same figure next to 1k: does a Create's cost grow with the volumes? */
export function createRemove100k(): Figure {
  return { id: 'cr-c1-100k', title: 'Create+Remove pairs, c=1, 100,000 volumes', mode: 'keepalive', concurrency: 1, durationMs: 1500, work: { kind: 'createRemove', prefix: 'be' } };
}

export const MOUNT_RW = 'bm-rw';
export const MOUNT_RO = 'bm-ro';

export function durableFigures(): Figure[] {
  return [
    { id: 'cr-c1', title: 'Create+Remove pairs, c=1', mode: 'keepalive', concurrency: 1, durationMs: 1500, work: { kind: 'createRemove', prefix: 'bc' }, offloop: true },
    { id: 'cr-c16', title: 'Create+Remove pairs, c=16', mode: 'keepalive', concurrency: 16, durationMs: 1500, work: { kind: 'createRemove', prefix: 'bd' }, offloop: true },
    { id: 'mu-rw', title: 'Mount+Unmount pairs, rw, c=1', mode: 'keepalive', concurrency: 1, durationMs: 1500, work: { kind: 'mountUnmount', volumes: [MOUNT_RW] }, offloop: true },
    { id: 'mu-ro', title: 'Mount+Unmount pairs, ro, c=1', mode: 'keepalive', concurrency: 1, durationMs: 1500, work: { kind: 'mountUnmount', volumes: [MOUNT_RO] }, offloop: true },
  ];
}

export const FSYNC_DELAY_MS = 200;

/** Get latency while a second client runs Create+Remove and every fsync under the run's directory is delayed. */
export function slowFsyncFigure(count: number): Figure {
  return {
    id: 'get-during-cr-slowfsync', title: `Get, c=1, while another client runs Create+Remove, fsync delayed ${FSYNC_DELAY_MS} ms`,
    mode: 'keepalive', concurrency: 1, durationMs: 3000, work: { kind: 'get', names: names(count) }, background: { kind: 'createRemove', prefix: 'bs' },
  };
}

/** Starts both servers (and the off-loop floor when `offloop`) on one dataset, runs `body`, stops them (also on failure). */
export async function withBoth(ds: Dataset, body: (s: Servers) => Promise<void>, env: Record<string, string> = {}, offloop = false): Promise<void> {
  const probe = ds.count ? volumeName(0) : 'none';
  const started: Running[] = [];
  try {
    for (const kind of ['floor', 'hostvol', ...(offloop ? ['offloop' as const] : [])] as Server[]) started.push(await start(kind, ds, probe, env));
    const [floor, hostvol, off] = started;
    await body({ floor, hostvol, ...(off ? { offloop: off } : {}) });
  } finally {
    for (const r of started.reverse()) await r.stop();
  }
}

/** Records the reply sizes of Get and List on both servers; they must match for the ratios to mean anything. */
export async function checkReplySizes(s: Servers, ds: Dataset, out: Samples, opt: Options): Promise<void> {
  const probes: [string, string, unknown][] = [[`List ${ds.count}`, '/VolumeDriver.List', {}]];
  if (ds.count) probes.unshift([`Get`, '/VolumeDriver.Get', { Name: volumeName(0) }]);
  for (const [label, route, body] of probes) {
    out.replyBytes[label] = { floor: 0, hostvol: 0 };
    for (const kind of ['floor', 'hostvol'] as Kind[]) {
      const reply = await oneRequest(s[kind].socket, route, body);
      okJson(route, reply);
      out.replyBytes[label][kind] = reply.body.length;
    }
    const { floor, hostvol } = out.replyBytes[label];
    if (floor !== hostvol) opt.log(`  WARNING: ${label} reply is ${hostvol} bytes from hostvol, ${floor} from the floor`);
  }
}

/** Creates the volumes the Mount figures use, on both servers, through the API. */
export async function createMountVolumes(s: Servers): Promise<void> {
  for (const server of [s.floor, s.hostvol, s.offloop]) {
    for (const [Name, Opts] of [[MOUNT_RW, null], [MOUNT_RO, { ro: 'true' }]] as const) {
      if (server) okJson('Create', await oneRequest(server.socket, '/VolumeDriver.Create', { Name, Opts }));
    }
  }
}

/**
 * Every figure against both servers, interleaved: figure by figure, the order alternating per
 * repetition. After `reps` rounds, a figure whose target the spread leaves undecided (GATES,
 * targets.ts) gets further rounds, up to `maxReps`: noise buys repetitions, not a looser target.
 */
export async function runFigures(s: Servers, figures: Figure[], out: Samples, opt: Options): Promise<void> {
  const undecided = (f: Figure) => GATES[f.id] !== undefined && !readable(GATES[f.id], out.load[f.id]);
  for (let rep = 0; rep < opt.maxReps; rep++) {
    const round = rep < opt.reps ? figures : figures.filter(undecided);
    if (!round.length) break;
    for (const f of round) {
      // The off-loop floor between the two, so floor and hostvol keep alternating which goes first.
      const off = f.offloop && s.offloop ? [s.offloop] : [];
      const order = rep % 2 === 0 ? [s.floor, ...off, s.hostvol] : [s.hostvol, ...off, s.floor];
      for (const server of order) await runOnce(server, f, out, opt, rep);
      out.reps[f.id] = rep + 1;
    }
  }
}

async function runOnce(server: Running, f: Figure, out: Samples, opt: Options, rep: number): Promise<void> {
  const spec = (work: Work, concurrency: number) => ({
    socket: server.socket, serverPid: server.pid, mode: f.mode, concurrency, work, maxOps: 2_000_000, minOps: MIN_OPS,
    warmupMs: WARMUP_MS * opt.scale, durationMs: f.durationMs * opt.scale,
  });
  const [r, bg] = await Promise.all([runLoad(spec(f.work, f.concurrency)), f.background ? runLoad(spec(f.background, 1)) : undefined]);
  for (const [id, x] of [[f.id, r], [`${f.id}-bg`, bg]] as const) {
    if (!x) continue;
    if (x.errors) throw new Error(`${f.title} on ${server.kind}${id === f.id ? '' : ' (background)'}: ${x.errors} failed requests, first: ${x.firstError}`);
    ((out.load[id] ??= { floor: [], hostvol: [] })[server.kind] ??= []).push(x);
  }
  opt.log(
    `  [${rep + 1}] ${f.title.padEnd(56)} ${server.kind.padEnd(7)} ${fmt(r.opsPerSec).padStart(7)} op/s  ` +
      `p50 ${fmt(r.p50Ms * 1000).padStart(6)} µs  p99 ${fmt(r.p99Ms * 1000).padStart(6)} µs  ` +
      `cpu: server ${fmt(r.serverCpu * 100)}%, load generator ${fmt(r.loadgenCpu * 100)}%` +
      (bg ? `; background ${fmt(bg.opsPerSec)} op/s` : ''),
  );
}

export function recordRss(s: Servers, label: string, out: Samples): void {
  const r = (out.rss[label] ??= { floor: [], hostvol: [] });
  for (const kind of ['floor', 'hostvol'] as Kind[]) r[kind].push(peakRssMb(s[kind].pid));
}

/** Exec to first answered Get, on each dataset, interleaved; also the peak RSS right after start. */
export async function runStartup(datasets: Dataset[], out: Samples, opt: Options): Promise<void> {
  for (let rep = 0; rep < opt.maxReps; rep++) {
    // Beyond --reps only while the 100k start-up target is undecided by the repetitions so far.
    if (rep >= opt.reps && startupReadable(out.startup['100000'])) break;
    for (const ds of datasets) {
      const order: Kind[] = rep % 2 === 0 ? ['floor', 'hostvol'] : ['hostvol', 'floor'];
      for (const kind of order) {
        const probe = ds.count ? volumeName(ds.count - 1) : 'none';
        const r = await start(kind, ds, probe);
        const rss = peakRssMb(r.pid);
        // A burst of `docker volume ls`: what a daemon with that many volumes meets in normal use.
        for (let i = 0; i < LIST_BURST && ds.count > 0; i++) okJson('List', await oneRequest(r.socket, '/VolumeDriver.List', {}));
        const afterLists = peakRssMb(r.pid);
        await r.stop();
        ((out.startup[String(ds.count)] ??= { floor: [], hostvol: [] })[kind]).push(r.startupMs);
        ((out.rss[`after start, ${ds.count} volumes`] ??= { floor: [], hostvol: [] })[kind]).push(rss);
        if (ds.count > 0) ((out.rss[`after ${LIST_BURST} Lists, ${ds.count} volumes`] ??= { floor: [], hostvol: [] })[kind]).push(afterLists);
        opt.log(
          `  [${rep + 1}/${opt.reps}] start-up, ${String(ds.count).padStart(6)} volumes  ${kind.padEnd(7)} ${fmt(r.startupMs)} ms, peak RSS ${fmt(rss)} MB` +
            (ds.count > 0 ? `, after ${LIST_BURST} Lists ${fmt(afterLists)} MB` : ''),
        );
      }
    }
  }
}
