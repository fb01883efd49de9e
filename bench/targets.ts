// The targets of issue 10, exactly as the issue words them, each decided from this run's samples.
// A condition on a load figure is decided on the per-repetition values (hostvol / floor of each
// back-to-back pair, or hostvol's own figure); GATES also tells runFigures which figures need more
// repetitions because their values fall on both sides of the limit.
import type { LoadResult } from './loadgen';
import type { Kind } from './servers';
import { fmt, median } from './stats';

type Runs = Record<Kind, LoadResult[]> | undefined;

export interface Cond {
  key: 'opsPerSec' | 'p50Ms' | 'p99Ms';
  /** ratio: hostvol / floor of each repetition; hostvol: hostvol's own value (ms for latencies). */
  of: 'ratio' | 'hostvol';
  limit: number;
  atLeast: boolean;
}

const ge = (key: Cond['key'], of: Cond['of'], limit: number): Cond => ({ key, of, limit, atLeast: true });
const le = (key: Cond['key'], of: Cond['of'], limit: number): Cond => ({ key, of, limit, atLeast: false });

/** figure id → the conditions its target puts on it. */
export const GATES: Record<string, Cond[]> = {
  'mu-ro': [ge('opsPerSec', 'ratio', 0.7), ge('opsPerSec', 'hostvol', 500)],
  'mu-rw': [ge('opsPerSec', 'ratio', 0.7)],
  'cr-c1': [ge('opsPerSec', 'ratio', 0.7)],
  'get-during-cr-slowfsync': [le('p99Ms', 'hostvol', 10)],
  'get-c1-ka': [le('p50Ms', 'ratio', 1.25)],
  'get-c16-ka': [ge('opsPerSec', 'ratio', 0.8)],
  'list-10000': [ge('opsPerSec', 'ratio', 0.9)],
  'list-100000': [ge('opsPerSec', 'ratio', 0.9)],
};

function values(c: Cond, runs: Runs): number[] {
  if (!runs) return [];
  const h = runs.hostvol.map((r) => r[c.key]);
  return c.of === 'hostvol' ? h : h.map((x, i) => x / (runs.floor[i]?.[c.key] ?? NaN)).filter(Number.isFinite);
}

const holds = (c: Cond, x: number) => (c.atLeast ? x >= c.limit : x <= c.limit);

/** True when every repetition so far falls on the same side of every limit (or there is nothing to decide). */
export function readable(conds: Cond[], runs: Runs): boolean {
  return conds.every((c) => {
    const xs = values(c, runs);
    return xs.length === 0 || xs.every((x) => holds(c, x)) || xs.every((x) => !holds(c, x));
  });
}

/** Start-up target: ≤ STARTUP_MS and ≤ STARTUP_RATIO× the floor, per repetition. */
export const STARTUP_MS = 1000;
export const STARTUP_RATIO = 1.3;
/** Peak RSS limits at 100k volumes, MB: after the Lists / after sustained load. */
export const RSS_LISTS_MB = 200;
export const RSS_SUSTAINED_MB = 250;
/** End-to-end limits, × the local driver: `docker volume create` / `docker run --rm -v`. */
export const ENGINE_CREATE = 1.1;
export const ENGINE_RUN = 1.05;
const startupMet = (h: number, ratio: number) => h <= STARTUP_MS && ratio <= STARTUP_RATIO;

/** True when every start-up repetition so far meets the target, or every one misses it. */
export function startupReadable(x: Record<Kind, number[]> | undefined): boolean {
  if (!x?.hostvol.length) return true;
  const each = x.hostvol.map((h, i) => startupMet(h, h / x.floor[i]));
  return each.every(Boolean) || !each.some(Boolean);
}

export interface TargetRow {
  /** Which target: the figure id for a load target ('cr-c1', 'mu-ro', …), else 'cr-c16', 'startup', 'rss', 'engine'. */
  key: string;
  row: string;
  target: string;
  measured: string;
  /** undefined: not run (measured says why). */
  met?: boolean;
  /** false when the repetitions still fell on both sides of a limit after the extra repetitions. */
  readable?: boolean;
}

export interface EngineFigure {
  mode: 'legacy' | 'managed';
  /** Median per-round ratio hostvol / local, or why it was not measured. */
  create?: number;
  /** Median wall time of `docker volume create`, ms, per driver. */
  createMs?: { local: number; hostvol: number };
  /**
   * The same, in the same rounds, with the two floors served to dockerd as legacy plugins (legacy
   * mode only: a floor is no managed plugin): what the plugin protocol and the same Create work cost.
   */
  floorCreateMs?: { floor: number; offloop: number; local: number };
  run?: number;
  notRun?: string;
}

export interface TargetInput {
  load: Record<string, Runs>;
  startup100k?: Record<Kind, number[]>;
  rssAfterLists?: number[];
  rssSustained?: number[];
  fsyncDelayMs: number;
  shimNotRun?: string;
  engine: EngineFigure[];
}

const unit = (k: Cond['key']) => (k === 'opsPerSec' ? '/s' : ` ms ${k.slice(0, 3)}`);

export function targets(t: TargetInput): TargetRow[] {
  const rows: TargetRow[] = [];
  /** One target over several figures' conditions. */
  const load = (row: string, target: string, ids: string[], notRun?: string) => {
    const parts: string[] = [];
    let met: boolean | undefined = true;
    let ok = true;
    for (const id of ids) {
      const runs = t.load[id];
      for (const c of GATES[id]) {
        const xs = values(c, runs);
        if (!xs.length) met = undefined;
        const m = median(xs);
        if (met !== undefined) met &&= holds(c, m);
        ok &&= readable([c], runs);
        const abs = (k: Kind) => `${fmt(median((runs?.[k] ?? []).map((r) => r[c.key])))}${unit(c.key)}`;
        if (!xs.length) parts.push(`${id}: not run`);
        else parts.push(c.of === 'ratio' ? `${fmt(m)}× floor (${abs('hostvol')} vs ${abs('floor')}, ${xs.length} reps)` : `${fmt(m)}${unit(c.key)} (${xs.length} reps)`);
      }
    }
    const none = ids.every((id) => !t.load[id]);
    rows.push({ key: ids.join('+'), row, target, measured: none ? `not run${notRun ? `: ${notRun}` : ''}` : parts.join(' / '), met, readable: ok });
  };
  load('ro Mount+Unmount pairs/s, c=1', '≥ 0.7× its same-syscall floor, and ≥ 500 pairs/s', ['mu-ro']);
  load('rw Mount+Unmount pairs/s, c=1', '≥ 0.7× floor', ['mu-rw']);
  load('Create+Remove pairs/s, c=1', '≥ 0.7× the same-work floor', ['cr-c1']);
  {
    const c1 = t.load['cr-c1']?.hostvol ?? [];
    const c16 = t.load['cr-c16']?.hostvol ?? [];
    const xs = c16.map((r, i) => r.opsPerSec / (c1[i]?.opsPerSec ?? NaN)).filter(Number.isFinite);
    const m = median(xs);
    rows.push({
      key: 'cr-c16',
      row: 'Create+Remove pairs/s, c=16', target: "≥ 3× hostvol's own c=1 figure (group commit)",
      measured: xs.length ? `${fmt(m)}× (${fmt(median(c16.map((r) => r.opsPerSec)))} vs ${fmt(median(c1.map((r) => r.opsPerSec)))} pairs/s, ${xs.length} reps)` : 'not run',
      met: xs.length ? m >= 3 : undefined,
    });
  }
  load(`Get p99 while another client runs Create+Remove, fsync delayed ${fmt(t.fsyncDelayMs)} ms`, '≤ 10 ms', ['get-during-cr-slowfsync'], t.shimNotRun);
  load('Get c=1 p50 / c=16 req/s', '≤ 1.25× / ≥ 0.8× floor', ['get-c1-ka', 'get-c16-ka']);
  load('List 10k / 100k req/s', '≥ 0.9× floor', ['list-10000', 'list-100000']);
  {
    const s = t.startup100k;
    const h = median(s?.hostvol ?? []);
    const r = median((s?.hostvol ?? []).map((x, i) => x / (s?.floor[i] ?? NaN)).filter(Number.isFinite));
    rows.push({
      key: 'startup',
      row: 'start-up to first answered Get, 100k volumes', target: '≤ 1,000 ms, and ≤ 1.3× floor',
      measured: s ? `${fmt(h)} ms, ${fmt(r)}× floor (${s.hostvol.length} reps)` : 'not run',
      met: s ? startupMet(h, r) : undefined,
      readable: startupReadable(s),
    });
  }
  {
    const a = median(t.rssAfterLists ?? []);
    const b = median(t.rssSustained ?? []);
    const have = Number.isFinite(a) && Number.isFinite(b);
    rows.push({
      key: 'rss',
      row: 'peak RSS at 100k volumes after 10 Lists / after sustained load', target: '≤ 200 MB / ≤ 250 MB',
      measured: `${fmt(a)} MB / ${fmt(b)} MB`, met: have ? a <= RSS_LISTS_MB && b <= RSS_SUSTAINED_MB : undefined,
    });
  }
  {
    const parts = t.engine.map((e) =>
      e.notRun ? `${e.mode}: not run: ${e.notRun}` : `${e.mode}: ${fmt(e.create ?? NaN)}× / ${fmt(e.run ?? NaN)}×`);
    const all = t.engine.length === 2 && t.engine.every((e) => !e.notRun);
    rows.push({
      key: 'engine',
      row: '`docker volume create`, `docker run --rm -v` end to end, legacy and managed', target: '≤ 1.10× / ≤ 1.05× the local driver',
      measured: parts.length ? parts.join('; ') : 'not run',
      met: all ? t.engine.every((e) => (e.create ?? Infinity) <= ENGINE_CREATE && (e.run ?? Infinity) <= ENGINE_RUN) : undefined,
    });
  }
  return rows;
}

export function targetTable(rows: TargetRow[]): string[] {
  const out = ['| figure | target | measured (hostvol; medians of interleaved repetitions) | met? |', '|---|---|---|---|'];
  for (const r of rows) {
    const met = r.met === undefined ? 'not run' : r.met ? '**yes**' : '**NO**';
    out.push(`| ${r.row} | ${r.target} | ${r.measured} | ${met}${r.readable === false ? ' (repetitions on both sides of the limit)' : ''} |`);
  }
  return out;
}
