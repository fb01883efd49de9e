// Turns the samples into BENCHMARKS.md: the targets met or not, the measured notes, machine, method,
// one table with floor, hostvol and ratio per figure (medians of the interleaved repetitions), the CPU
// of server and load generator, and the end-to-end part. Every figure in it comes from the run.
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EngineResult } from './engine';
import type { LoadResult } from './loadgen';
import { LIST_BURST, type Figure, type Samples } from './scenarios';
import { FLOOR_PRAGMAS, FLOOR_WORK } from './floor';
import { OFFLOOP_WORK } from './floor-offloop';
import { REPO, type Kind } from './servers';
import { targetTable, type TargetRow } from './targets';
import { fmt, median } from './stats';

/** The parts of a run, for --only. */
export const PHASES = ['get', 'list', 'durable', 'slowfsync', 'startup', 'engine', 'archive', 'cluster'] as const;

export interface Row {
  figure: string;
  metric: string;
  floor: number;
  hostvol: number;
  /** hostvol / floor */
  ratio: number;
  reps: number;
  /** The off-loop floor's median and hostvol / off-loop floor, where it ran (the durable figures). */
  offloop?: number;
  vsOffloop?: number;
  /** The off-loop floor / the floor. */
  offloopRatio?: number;
}

const med = (rs: LoadResult[] | undefined, key: keyof LoadResult) => median((rs ?? []).map((r) => r[key] as number));

/**
 * The ratio of each repetition's back-to-back pair (hostvol / floor), then the median: robust to the
 * machine's load drifting between repetitions, which a ratio of medians is not.
 */
export function pairedRatio(floor: number[], hostvol: number[]): number {
  return median(hostvol.map((h, i) => h / floor[i]));
}

/** The table rows of the load figures (background loads included, titled as such). */
export function loadRows(figures: Figure[], s: Samples): Row[] {
  const rows: Row[] = [];
  const all = figures.flatMap((f) => (f.background ? [f, { ...f, id: `${f.id}-bg`, title: `${f.title}: the Create+Remove client`, work: f.background }] : [f]));
  for (const f of all) {
    const x = s.load[f.id];
    if (!x) continue;
    const row = (metric: string, key: keyof LoadResult, scale: number): Row => {
      const floor = med(x.floor, key) * scale;
      const hostvol = med(x.hostvol, key) * scale;
      const of = (rs: LoadResult[]) => rs.map((r) => r[key] as number);
      const ratio = pairedRatio(of(x.floor), of(x.hostvol));
      const off = x.offloop?.length
        ? { offloop: med(x.offloop, key) * scale, vsOffloop: pairedRatio(of(x.offloop), of(x.hostvol)), offloopRatio: pairedRatio(of(x.floor), of(x.offloop)) }
        : {};
      return { figure: f.title, metric, floor, hostvol, ratio, reps: x.hostvol.length, ...off };
    };
    const ms = f.work.kind !== 'get';
    rows.push(
      row(f.work.kind === 'get' || f.work.kind === 'list' ? 'requests/s' : 'pairs/s', 'opsPerSec', 1),
      row(ms ? 'p50 ms' : 'p50 µs', 'p50Ms', ms ? 1 : 1000),
      row(ms ? 'p99 ms' : 'p99 µs', 'p99Ms', ms ? 1 : 1000),
    );
  }
  return rows;
}

export function otherRows(s: Samples): Row[] {
  const rows: Row[] = [];
  const pair = (figure: string, metric: string, x: Record<Kind, number[]> | undefined) => {
    if (x) rows.push({ figure, metric, floor: median(x.floor), hostvol: median(x.hostvol), ratio: pairedRatio(x.floor, x.hostvol), reps: x.hostvol.length });
  };
  pair('Start-up, 0 volumes (exec to first answered Get)', 'ms', s.startup['0']);
  pair('Start-up, 100,000 volumes (exec to first answered Get)', 'ms', s.startup['100000']);
  pair('Peak RSS, idle (after start, 0 volumes)', 'MB', s.rss['after start, 0 volumes']);
  pair('Peak RSS after start, 100,000 volumes', 'MB', s.rss['after start, 100000 volumes']);
  pair(`Peak RSS, 100,000 volumes, after start and ${LIST_BURST} Lists`, 'MB', s.rss[`after ${LIST_BURST} Lists, 100000 volumes`]);
  pair('Peak RSS, 100,000 volumes, after the sustained load figures (List c=1 back to back, Create+Remove)', 'MB', s.rss['after List, 100000 volumes']);
  return rows;
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '?';
  }
}

export function commitInfo(): string {
  const head = sh('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['status', '--porcelain', '--', 'src']) ? ' (src/ has uncommitted changes)' : '';
  return `${head}${dirty}`;
}

export function machine(tmp: string, load: { before: number[]; after: number[] }): string[] {
  const cpus = os.cpus();
  // The run's directory is gone by now; its parent is on the same file system.
  const fsType = sh('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', path.dirname(tmp)]).replace(/\s+/, ' on ');
  return [
    `- CPU: ${cpus.length} × ${cpus[0]?.model ?? '?'}; memory ${fmt(os.totalmem() / 2 ** 30)} GiB`,
    `- OS: ${os.type()} ${os.release()} (${sh('sh', ['-c', '. /etc/os-release && echo "$PRETTY_NAME"'])}); Node ${process.version}`,
    `- Stores, data roots and sockets in ${tmp} (${fsType})`,
    `- Load average (1, 5, 15 min) before / after the run: ${load.before.map((x) => x.toFixed(2)).join(' ')} / ${load.after.map((x) => x.toFixed(2)).join(' ')}`,
  ];
}

function table(rows: Row[]): string[] {
  const out = [
    '| figure | metric | floor | floor, off the event loop | hostvol | ratio (hostvol / floor) | hostvol / off-loop floor | reps |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const off = r.offloop === undefined ? '–' : fmt(r.offloop);
    const vs = r.vsOffloop === undefined ? '–' : `${fmt(r.vsOffloop)}×`;
    out.push(`| ${r.figure} | ${r.metric} | ${fmt(r.floor)} | ${off} | ${fmt(r.hostvol)} | ${fmt(r.ratio)}× | ${vs} | ${r.reps} |`);
  }
  return out;
}

function cpuTable(figures: Figure[], s: Samples): string[] {
  const out = [
    '| figure | server | server CPU | load generator CPU |',
    '|---|---|---:|---:|',
  ];
  for (const f of figures) {
    const x = s.load[f.id];
    if (!x) continue;
    for (const [kind, rs] of [['floor', x.floor], ['floor, off the event loop', x.offloop], ['hostvol', x.hostvol]] as const) {
      if (rs?.length) out.push(`| ${f.title} | ${kind} | ${fmt(med(rs, 'serverCpu') * 100)} % | ${fmt(med(rs, 'loadgenCpu') * 100)} % |`);
    }
  }
  return out;
}

export interface ReportInput {
  /** HEAD when hostvol was built for this run, and whether src/ differed from it. */
  commit: string;
  figures: Figure[];
  samples: Samples;
  engine: EngineResult;
  targets: TargetRow[];
  /** For each target not met: the cause this run measured and the floor that bounds it (causes.ts). */
  causes: string[];
  reps: number;
  maxReps: number;
  tmp: string;
  load: { before: number[]; after: number[] };
  runtimeS: number;
  argv: string[];
  notes: string[];
  /** The export/import section (bench/archive.ts), as measured in this run. */
  archive: string[];
  /** The etcd-against-embedded section (bench/cluster.ts), as measured in this run. */
  cluster?: string[];
}

export function render(r: ReportInput): string {
  const rows = [...loadRows(r.figures, r.samples), ...otherRows(r.samples)];
  const bytes = Object.entries(r.samples.replyBytes).map(([k, v]) => `${k}: ${v.floor} / ${v.hostvol}`);
  const command = `npm run bench${r.argv.length ? ` -- ${r.argv.join(' ')}` : ''}`;
  return [
    '# hostvol benchmarks',
    '',
    `Written by \`${command}\` on ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}, hostvol at commit ${r.commit}; ` +
      `the whole run took ${fmt(r.runtimeS / 60)} min. Do not edit by hand: run it again.`,
    '',
    `**How to reproduce:** \`${command}\` (on a fresh clone: \`make build\` first; \`make bench\` also installs the engine). ` +
      `Options: \`--reps N\`, \`--max-reps N\`, \`--engine-rounds N\`, \`--scale X\` (durations), \`--only ${PHASES.join(',')}\`.`,
    '',
    '## Targets (issue 10)',
    '',
    ...targetTable(r.targets),
    '',
    ...(r.causes.length ? ['### Targets not met: the cause measured, the floor that bounds it', '', ...r.causes, ''] : []),
    ...(r.notes.length ? ['### Measured alongside', '', ...r.notes, ''] : []),
    '## Machine',
    '',
    ...machine(r.tmp, r.load),
    '',
    '## How it was measured',
    '',
    '- **hostvol**: `node dist/cli.js serve --socket S --data-root D --state-dir T --log-level info` as a child process, as dockerd meets it (info log to a file).',
    `- **floor**: \`bench/floor.ts\`, bare \`node:http\` on a Unix socket, replies of the same shape as hostvol's (reply bytes floor / hostvol: ${bytes.join('; ') || 'not checked'}), ` +
      `its own SQLite file, data root and mounts directory, SQLite pragmas ${FLOOR_PRAGMAS.map((p) => `\`${p}\``).join(', ')}, ` +
      "every SQLite write synchronous on its event loop (the floor's naive design), the libc calls through hostvol's own `dist/host/libc.js` (each one call on hostvol's host worker thread and back). Per request:",
    ...Object.entries(FLOOR_WORK).map(([k, v]) => `  - ${k}: ${v}`),
    "- **floor, off the event loop**: `bench/floor-offloop.ts`, the floor's server, syscalls, fsyncs, SQL and pragmas, but every step hostvol runs on a worker thread " +
      'handed to a worker thread in the order hostvol runs it: host steps as one synchronous job each on one thread (koffi for the mount calls, as hostvol), ' +
      'SQLite commits on a second thread with its own connection; no group commit. Run in the durable figures only, between the floor and hostvol. Per request (→ host thread, ⇒ commit thread, ∥ side by side):',
    ...Object.entries(OFFLOOP_WORK).map(([k, v]) => `  - ${k}: ${v}`),
    '- **load generator**: `bench/loadgen.ts`, a separate process per run, closed-loop connections over raw Unix sockets sending what dockerd sends ' +
      '(POST, no Content-Type, compact JSON + "\\n", keep-alive). "new connection" dials per request. A figure with a second client runs a second load generator alongside.',
    `- Each load figure: at least ${r.reps} repetitions (at most ${r.maxReps}: a figure whose repetitions fall on both sides of its target's limit gets more), interleaved ` +
      '(figure by figure, floor and hostvol alternating which goes first, the off-loop floor between them), each a warm-up and then a fixed time window. floor and hostvol columns: medians over the repetitions ' +
      '(p50/p99 within a run, then the median over runs); ratio: the median of the per-repetition ratios. Pairs (Create+Remove, Mount+Unmount) count as one operation.',
    '- Stores with 1k/10k/100k volumes are written directly with better-sqlite3 in one transaction after hostvol made the schema; each floor gets a copy.',
    '- Start-up: from spawn to the first answered Get (of the last volume), polling the socket every ~1 ms. Peak RSS: VmHWM from /proc.',
    '',
    '## Results',
    '',
    ...table(rows),
    '',
    '## CPU during the load figures (median; 100 % = one core)',
    '',
    ...cpuTable(r.figures, r.samples),
    '',
    '## End to end through a real engine',
    '',
    ...r.engine.lines,
    '',
    '## Export and import against GNU tar (issue 12)',
    '',
    ...r.archive,
    '',
    '## Cluster mode: etcd against the embedded store (issue 13)',
    '',
    ...(r.cluster ?? ['Not run (--only).']),
    '',
  ].join('\n');
}
