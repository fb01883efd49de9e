// `npm run bench`: builds hostvol, makes the stores, runs every figure against the floor and hostvol
// interleaved, then the engine part, and writes BENCHMARKS.md. Bounded: fixed windows, at most --max-reps.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runArchiveBench } from './archive';
import { runClusterBench } from './cluster';
import { causes } from './causes';
import type { EngineResult } from './engine';
import { measureHandoff } from './handoff';
import { notes } from './notes';
import { PHASES, commitInfo, loadRows, otherRows, render } from './report';
import {
  FSYNC_DELAY_MS, LIST_BURST, checkReplySizes, createMountVolumes, createRemove100k, measureFsync, durableFigures, emptySamples, getFigures, listFigure,
  recordRss, runFigures, runStartup, slowFsyncFigure, withBoth, type Figure, type Options,
} from './scenarios';
import { REPO, makeDataset, unmountUnder, type Dataset } from './servers';
import { buildShim } from './slowfsync';
import { fmt } from './stats';
import { targetTable, targets } from './targets';

function parseArgs(argv: string[]) {
  const o = { reps: 5, maxReps: 0, engineRounds: 30, scale: 1, only: new Set<string>(PHASES), out: undefined as string | undefined, build: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--reps') o.reps = Math.max(1, Number(val()));
    else if (a === '--max-reps') o.maxReps = Number(val());
    else if (a === '--scale') o.scale = Number(val());
    else if (a === '--engine-rounds') o.engineRounds = Math.max(1, Number(val()));
    else if (a === '--only') o.only = new Set(val().split(','));
    else if (a === '--out') o.out = val();
    else if (a === '--no-build') o.build = false;
    else throw new Error(`unknown argument ${a}; see bench/run.ts`);
  }
  o.maxReps = Math.max(o.reps, o.maxReps || 3 * o.reps);
  for (const p of o.only) if (!(PHASES as readonly string[]).includes(p)) throw new Error(`--only: unknown phase ${p}`);
  // A partial run must not overwrite the full report.
  o.out ??= o.only.size === PHASES.length ? path.join(REPO, 'BENCHMARKS.md') : undefined;
  return o;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const args = parseArgs(argv);
  const began = performance.now();
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const opt: Options = { reps: args.reps, maxReps: args.maxReps, scale: args.scale, log };
  if (args.build) {
    log('building hostvol (tsc -p tsconfig.json)');
    execFileSync(path.join(REPO, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: REPO, stdio: 'inherit' });
  }
  const commit = commitInfo(); // what is measured: dist/ is built from this working tree
  const load = { before: os.loadavg(), after: [] as number[] };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hostvol-bench-'));
  const samples = emptySamples();
  const figures: Figure[] = [];
  let engine: EngineResult = { lines: ['Not run (--only).'], figures: [] };
  let archive = ['Not run (--only).'];
  let cluster: string[] | undefined;
  try {
    const ds: Record<number, Dataset> = {};
    const need = (n: number) => async () => (ds[n] ??= await makeDataset(tmp, n));
    if (args.only.has('get') || args.only.has('list') || args.only.has('durable')) {
      const d = await need(1000)();
      log(`\n== 1,000 volumes: ${[...args.only].filter((p) => p !== 'startup' && p !== 'engine').join(', ')}`);
      const figs1k = [
        ...(args.only.has('get') ? getFigures(1000) : []),
        ...(args.only.has('list') ? [listFigure(1000)] : []),
        ...(args.only.has('durable') ? durableFigures() : []),
      ];
      figures.push(...figs1k);
      await withBoth(d, async (s) => {
        await checkReplySizes(s, d, samples, opt);
        if (args.only.has('durable')) {
          measureFsync(d.dir, samples);
          log(`  fsync of a 4 KiB append here: p50 ${fmt(samples.fsync!.p50)} ms, p90 ${fmt(samples.fsync!.p90)} ms`);
          const h = (samples.handoff = await measureHandoff());
          log(`  worker thread round trip (p50 of ${h.n}): ${fmt(h.tightUs)} µs in a tight loop, ${fmt(h.idleUs)} µs after ${h.idleMs} ms idle`);
          await createMountVolumes(s);
        }
        await runFigures(s, figs1k, samples, opt);
      }, {}, args.only.has('durable'));
    }
    if (args.only.has('slowfsync')) {
      const d = await need(1000)();
      const shim = buildShim(d.dir, FSYNC_DELAY_MS);
      if ('notRun' in shim) {
        samples.shim = shim;
        log(`\n== fsync delayed: not run: ${shim.notRun}`);
      } else {
        samples.shim = { fsyncMs: shim.fsyncMs, delayMs: FSYNC_DELAY_MS };
        log(`\n== 1,000 volumes, fsync under ${d.dir} delayed (one fsync took ${fmt(shim.fsyncMs)} ms with the shim)`);
        const f = slowFsyncFigure(1000);
        figures.push(f);
        await withBoth(d, (s) => runFigures(s, [f], samples, opt), shim.env);
      }
    }
    if (args.only.has('list')) {
      for (const n of [10_000, 100_000]) {
        const d = await need(n)();
        log(`\n== ${n.toLocaleString('en-US')} volumes: List`);
        const figsN = n === 100_000 && args.only.has('durable') ? [listFigure(n), createRemove100k()] : [listFigure(n)];
        figures.push(...figsN);
        await withBoth(d, async (s) => {
          await checkReplySizes(s, d, samples, opt);
          await runFigures(s, figsN, samples, opt);
          if (n === 100_000) recordRss(s, 'after List, 100000 volumes', samples);
        });
      }
    }
    if (args.only.has('startup')) {
      log('\n== start-up and memory');
      await runStartup([await need(0)(), await need(100_000)()], samples, opt);
    }
    if (args.only.has('engine')) {
      log('\n== end to end through a real engine');
      // Loaded only here: it pulls in the e2e harness, which a run without the engine does not need.
      const { runEngine } = await import('./engine');
      engine = await runEngine({ log, n: args.engineRounds });
    }
    if (args.only.has('archive')) {
      log('\n== export and import of a 1 GiB tree against GNU tar');
      // Each repetition of a whole-second export swings by a third on this machine: as many as --max-reps.
      archive = (await runArchiveBench({ tmp, bytes: 1 << 30, reps: args.maxReps, dfReps: args.reps, log })).lines;
    }
    if (args.only.has('cluster')) {
      log('\n== cluster mode: etcd (3 members) against the embedded store');
      cluster = (await runClusterBench({ tmp, reps: args.reps, scale: args.scale, log })).lines;
    }
  } finally {
    const left = unmountUnder(tmp);
    if (left.length) log(`unmounted what the servers left mounted: ${left.join(' ')}`);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  load.after = os.loadavg();
  const runtimeS = (performance.now() - began) / 1000;

  const rows = [...loadRows(figures, samples), ...otherRows(samples)];
  const goals = targets({
    load: samples.load,
    startup100k: samples.startup['100000'],
    rssAfterLists: samples.rss[`after ${LIST_BURST} Lists, 100000 volumes`]?.hostvol,
    rssSustained: samples.rss['after List, 100000 volumes']?.hostvol,
    fsyncDelayMs: FSYNC_DELAY_MS,
    shimNotRun: samples.shim && 'notRun' in samples.shim ? samples.shim.notRun : undefined,
    engine: engine.figures,
  });
  log('\n== summary (medians)');
  for (const r of rows) {
    const off = r.offloop === undefined ? '' : `  off-loop ${fmt(r.offloop).padStart(8)}`;
    log(`  ${`${r.figure}, ${r.metric}`.padEnd(70)} floor ${fmt(r.floor).padStart(8)}${off}  hostvol ${fmt(r.hostvol).padStart(8)}  ratio ${fmt(r.ratio)}×  (${r.reps} reps)`);
  }
  for (const l of targetTable(goals)) log(`  ${l}`);
  const why = causes(goals, rows, samples, engine.figures);
  for (const l of why) log(`  ${l}`);
  if (args.out) {
    const text = render({
      commit, figures, samples, engine, archive, cluster, targets: goals, causes: why, reps: args.reps, maxReps: args.maxReps, tmp, load, runtimeS, argv, notes: notes(rows, samples),
    });
    fs.writeFileSync(args.out, text);
    log(`wrote ${path.relative(REPO, args.out) || args.out}`);
  }
  log(`bench took ${fmt(runtimeS)} s`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : err}\n`);
  process.exit(1);
});
