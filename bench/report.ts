// Turns the samples into BENCHMARKS.md: machine, commands, one table with floor, hostvol and ratio
// per figure (medians of the interleaved repetitions), targets met or not, the Express steps, the
// CPU of the load generator, and the end-to-end part.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EngineResult } from './engine';
import type { LoadResult } from './loadgen';
import { LIST_BURST, type Figure, type Samples } from './scenarios';
import { REPO, type Kind } from './servers';
import { fmt, median } from './stats';

export interface Row {
  figure: string;
  metric: string;
  floor: number;
  hostvol: number;
  /** hostvol / floor */
  ratio: number;
  target?: string;
  met?: boolean;
}

export interface ExpressStep {
  label: string;
  date: string;
  commit: string;
  rows: { figure: string; metric: string; floor: number; hostvol: number; ratio: number }[];
}

export const STEPS_FILE = path.join(REPO, 'bench/express-steps.json');

const med = (rs: LoadResult[] | undefined, key: keyof LoadResult) => median((rs ?? []).map((r) => r[key] as number));

/**
 * The ratio of each repetition's back-to-back pair (hostvol / floor), then the median: robust to the
 * machine's load drifting between repetitions, which a ratio of medians is not.
 */
export function pairedRatio(floor: number[], hostvol: number[]): number {
  return median(hostvol.map((h, i) => h / floor[i]));
}

/** The table rows of the load figures, with targets attached where the issue sets one. */
export function loadRows(figures: Figure[], s: Samples): Row[] {
  const rows: Row[] = [];
  for (const f of figures) {
    const x = s.load[f.id];
    if (!x) continue;
    const row = (metric: string, key: keyof LoadResult, scale: number): Row => {
      const floor = med(x.floor, key) * scale;
      const hostvol = med(x.hostvol, key) * scale;
      const ratio = pairedRatio(x.floor.map((r) => r[key] as number), x.hostvol.map((r) => r[key] as number));
      return { figure: f.title, metric, floor, hostvol, ratio };
    };
    const thr = row(f.work.kind === 'get' || f.work.kind === 'list' ? 'requests/s' : 'pairs/s', 'opsPerSec', 1);
    const p50 = row(f.work.kind === 'list' ? 'p50 ms' : 'p50 µs', 'p50Ms', f.work.kind === 'list' ? 1 : 1000);
    const p99 = row(f.work.kind === 'list' ? 'p99 ms' : 'p99 µs', 'p99Ms', f.work.kind === 'list' ? 1 : 1000);
    if (f.id === 'get-c1-ka') target(p50, '≤ 1.5× floor', p50.ratio <= 1.5);
    if (f.id === 'get-c16-ka') target(thr, '≥ 0.5× floor', thr.ratio >= 0.5);
    if (f.id === 'list-10000') target(thr, '≥ 0.9× floor', thr.ratio >= 0.9);
    if (f.id === 'list-100000') target(p50, '≤ 400 ms', p50.hostvol <= 400);
    if (f.id === 'cr-c1') target(thr, '≥ 300 pairs/s', thr.hostvol >= 300);
    rows.push(thr, p50, p99);
  }
  return rows;
}

function target(r: Row, text: string, met: boolean): void {
  r.target = text;
  r.met = Number.isFinite(r.ratio) && met;
}

export function otherRows(s: Samples): Row[] {
  const rows: Row[] = [];
  const pair = (figure: string, metric: string, x: Record<Kind, number[]> | undefined): Row | undefined => {
    if (!x) return undefined;
    const floor = median(x.floor);
    const hostvol = median(x.hostvol);
    const r: Row = { figure, metric, floor, hostvol, ratio: pairedRatio(x.floor, x.hostvol) };
    rows.push(r);
    return r;
  };
  pair('Start-up, 0 volumes (exec to first answered Get)', 'ms', s.startup['0']);
  const st = pair('Start-up, 100,000 volumes (exec to first answered Get)', 'ms', s.startup['100000']);
  if (st) target(st, '≤ 1000 ms', st.hostvol <= 1000);
  pair('Peak RSS, idle (after start, 0 volumes)', 'MB', s.rss['after start, 0 volumes']);
  pair('Peak RSS after start, 100,000 volumes', 'MB', s.rss['after start, 100000 volumes']);
  const peak = pair(`Peak RSS, 100,000 volumes, after start and ${LIST_BURST} Lists`, 'MB', s.rss[`after ${LIST_BURST} Lists, 100000 volumes`]);
  if (peak) target(peak, '≤ 200 MB', peak.hostvol <= 200);
  pair('Peak RSS, 100,000 volumes, after the sustained load figures (List c=1 back to back, Create+Remove)', 'MB', s.rss['after List, 100000 volumes']);
  return rows;
}

export function stepRows(figures: Figure[], s: Samples): ExpressStep['rows'] {
  return loadRows(figures.filter((f) => f.work.kind === 'get'), s)
    .filter((r) => r.metric !== 'p99 µs')
    .map(({ figure, metric, floor, hostvol, ratio }) => ({ figure, metric, floor, hostvol, ratio }));
}

export function readSteps(): ExpressStep[] {
  try {
    return JSON.parse(fs.readFileSync(STEPS_FILE, 'utf8')) as ExpressStep[];
  } catch {
    return [];
  }
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
    `- Stores and sockets in ${tmp} (${fsType}); SQLite WAL, synchronous=FULL, so every durable write is an fsync on this disk`,
    `- Load average before / after: ${load.before.map((x) => x.toFixed(2)).join(' ')} / ${load.after.map((x) => x.toFixed(2)).join(' ')} (noisy, shared 2-core VM)`,
  ];
}

function table(rows: Row[]): string[] {
  const out = ['| figure | metric | floor | hostvol | ratio (hostvol / floor) | target | met? |', '|---|---|---:|---:|---:|---|---|'];
  for (const r of rows) {
    const met = r.met === undefined ? '' : r.met ? '**yes**' : '**NO**';
    out.push(`| ${r.figure} | ${r.metric} | ${fmt(r.floor)} | ${fmt(r.hostvol)} | ${fmt(r.ratio)}× | ${r.target ?? ''} | ${met} |`);
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
    for (const kind of ['floor', 'hostvol'] as Kind[]) {
      out.push(`| ${f.title} | ${kind} | ${fmt(med(x[kind], 'serverCpu') * 100)} % | ${fmt(med(x[kind], 'loadgenCpu') * 100)} % |`);
    }
  }
  return out;
}

function stepsTable(steps: ExpressStep[]): string[] {
  if (!steps.length) return ['(no steps recorded: run `npm run bench -- --only get --step "label"` after each change)'];
  const keep = new Set([
    'Get, c=1, keep-alive: p50 µs',
    'Get, c=16, keep-alive: requests/s',
    'Get, c=1, new connection per request: p50 µs',
    'Get, c=16, new connection per request: requests/s',
  ]);
  const figures = [...new Set(steps.flatMap((s) => s.rows.map((r) => `${r.figure}: ${r.metric}`)))].filter((f) => keep.has(f));
  const out = [
    `| step (commit, date) | ${figures.join(' | ')} |`,
    `|---|${figures.map(() => '---:').join('|')}|`,
  ];
  for (const s of steps) {
    const cells = figures.map((f) => {
      const r = s.rows.find((x) => `${x.figure}: ${x.metric}` === f);
      return r ? `${fmt(r.ratio)}× (${fmt(r.hostvol)} vs ${fmt(r.floor)})` : '';
    });
    out.push(`| ${s.label} (${s.commit}, ${s.date.slice(0, 10)}) | ${cells.join(' | ')} |`);
  }
  return out;
}

export interface ReportInput {
  /** HEAD when hostvol was built for this run, and whether src/ differed from it. */
  commit: string;
  figures: Figure[];
  samples: Samples;
  engine: EngineResult;
  reps: number;
  tmp: string;
  load: { before: number[]; after: number[] };
  runtimeS: number;
  argv: string[];
  notes: string[];
}

export function render(r: ReportInput): string {
  const rows = [...loadRows(r.figures, r.samples), ...otherRows(r.samples)];
  const targets = rows.filter((x) => x.target);
  const bytes = Object.entries(r.samples.replyBytes).map(([k, v]) => `${k}: ${v.floor} / ${v.hostvol}`);
  return [
    '# hostvol benchmarks',
    '',
    `Written by \`npm run bench\` on ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}, hostvol at commit ${r.commit}; ` +
      `the whole run took ${fmt(r.runtimeS / 60)} min. Do not edit by hand: run it again.`,
    '',
    '## Machine',
    '',
    ...machine(r.tmp, r.load),
    '',
    '## How it was measured',
    '',
    `- Command: \`npm run bench${r.argv.length ? ` -- ${r.argv.join(' ')}` : ''}\` (on a fresh clone: \`make build\` or \`make test\` first; ` +
      '`make bench` also installs the engine). Options: `--reps N`, `--scale X` (durations), `--only get,list,durable,startup,engine`, `--step LABEL`.',
    '- **hostvol**: `node dist/cli.js serve --socket S --data-root D --state-dir T --log-level info` as a child process, as dockerd meets it (info log to a file).',
    '- **floor**: `bench/floor.ts`, bare `node:http` on a Unix socket: reads the body, `JSON.parse`, answers from a Map with `JSON.stringify` of a reply of the same shape, no validation, no store writes, no logging. ' +
      `It loads the same SQLite records at start. Reply bytes floor / hostvol: ${bytes.join('; ')}.`,
    '- **load generator**: `bench/loadgen.ts`, a separate process per run, closed-loop connections over raw Unix sockets sending what dockerd sends ' +
      '(POST, no Content-Type, compact JSON + "\\n", keep-alive). "new connection" dials per request. Its CPU (process.cpuUsage) and the server\'s (/proc/PID/stat) are measured over the same window: see the CPU table.',
    `- Each load figure: ${r.reps} repetitions, interleaved (figure by figure, floor and hostvol alternating which goes first), each with a warm-up and then a fixed ` +
      'time window. floor and hostvol columns: medians over the repetitions (p50/p99 are taken within a run, then the median over runs); ' +
      'ratio: the median of the per-repetition ratios (each measured back to back), which is robust to the load drifting. Pairs (Create+Remove, Mount+Unmount) count as one operation.',
    '- Stores with 1k/10k/100k volumes are written directly with better-sqlite3 in one transaction after hostvol made the schema (state ready, path `<data-root>/<name>`).',
    '- Start-up: from spawn to the first answered Get (of the last volume), polling the socket every ~1 ms. Peak RSS: VmHWM from /proc.',
    '',
    '## Results',
    '',
    ...table(rows),
    '',
    '### Targets',
    '',
    ...targets.map((t) => `- ${t.met ? 'met' : '**not met**'}: ${t.figure}, ${t.metric}: target ${t.target}; measured hostvol ${fmt(t.hostvol)}, floor ${fmt(t.floor)}, ratio ${fmt(t.ratio)}×`),
    ...r.engine.targets.map((t) => `- ${t.met === undefined ? 'skipped' : t.met ? 'met' : '**not met**'}: ${t.text}`),
    '',
    ...(r.notes.length ? ['### Notes on the figures', '', ...r.notes, ''] : []),
    '## Express set-up: what each change bought',
    '',
    'Get figures, hostvol / floor (hostvol vs floor in brackets), each measured with `npm run bench -- --only get --step LABEL` right after the change, ' +
      'in the working tree on top of the commit shown; the rows are kept in `bench/express-steps.json`. Each row is its own run, so compare the ratios, not the absolute numbers ' +
      '(the machine\'s load varied by 3× over the session).',
    '',
    ...stepsTable(readSteps()),
    '',
    'What it showed: with Express in the request path no set-up got Get c=16 above ~0.25× the floor (Express 4 and 5 alike, one route or nine, ' +
      'body-parser or not). Even an Express app whose only middleware answers by hand costs 3-5× the CPU per request of bare node:http here, ' +
      'and most of that is its per-request set-up (it re-parents req and res with Object.setPrototypeOf: doing only that on bare node:http ' +
      'costs 2-3×). So dockerd\'s requests (POST to a plugin route, no Content-Type, plain body ≤ 64kb) are answered on node:http directly, ' +
      'and every other request goes through the Express app as before, with byte-identical replies and log lines; Express itself is loaded on the first such request.',
    '',
    '## CPU during the load figures (median; 100 % = one core)',
    '',
    'The load generator is a separate single-threaded process; on 2 cores it and the server each get one. The c=1 figures are latency-bound (request, wake-up, ' +
      'reply: both sides around half a core). In the c=16 keep-alive figures the servers are near a full core and the load generator well below. ' +
      'With c=16 new connections the load generator (dialling) is nearly as busy as the server, so that figure understates the difference between floor and hostvol.',
    '',
    ...cpuTable(r.figures, r.samples),
    '',
    '## End to end through a real engine',
    '',
    ...r.engine.lines,
    '',
  ].join('\n');
}
