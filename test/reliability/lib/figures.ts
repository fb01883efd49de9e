// Short or long variant, seeded randomness, invariant bookkeeping, and the figures of the long run,
// which are merged group by group into RELIABILITY.md (the short run never writes it).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO } from './serve';

export const LONG = process.env.RELIABILITY_LONG === '1';

/** The short value for `make test`, the long one for `npm run reliability`. */
export function pick<T>(short: T, long: T): T {
  return LONG ? long : short;
}

/** The seed of this run: RELIABILITY_SEED to replay a failure, otherwise fresh each run. */
export function seed(): number {
  const s = Number(process.env.RELIABILITY_SEED);
  return Number.isInteger(s) && s > 0 ? s : (Date.now() % 2 ** 31) + 1;
}

/** mulberry32: small, fast, seeded; good enough to pick operations and kill moments. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** Counts checked invariants and collects violations instead of stopping at the first one. */
export class Invariants {
  checks = 0;
  readonly violations: string[] = [];

  check(ok: boolean, message: string | (() => string)): boolean {
    this.checks++;
    if (!ok) this.violations.push(typeof message === 'string' ? message : message());
    return ok;
  }

  /** The jest assertion at the end of a test: the list shows every violation at once. */
  assertNone(context = ''): void {
    if (this.violations.length) {
      throw new Error(`${this.violations.length} invariant violation(s)${context ? ` (${context})` : ''}:\n${this.violations.slice(0, 50).join('\n')}`);
    }
  }
}

export interface GroupFigures {
  title: string;
  seed?: number;
  durationMs: number;
  checks: number;
  violations: number;
  /** Only kills each followed by a restart and a check of every invariant the group keeps. */
  kills?: number;
  requests?: number;
  clients?: number;
  escapes?: number;
  /** Free-form details shown in the group's row. */
  notes?: string;
}

const FILE = path.join(REPO, 'RELIABILITY.md');
const MARK = '<!-- figures: ';
// One jest process runs the whole long suite (--runInBand): its pid ties the groups of one run together.
const RUN_ID = `${process.pid}@${Math.round(Date.now() / 1000 - process.uptime())}`;

/** Long run only: merges this group's figures into RELIABILITY.md (groups of an older run are dropped). */
export function recordFigures(group: string, fig: GroupFigures): void {
  if (!LONG) return;
  let groups: Record<string, GroupFigures> = {};
  try {
    const text = fs.readFileSync(FILE, 'utf8');
    const at = text.indexOf(MARK);
    if (at >= 0) {
      const saved = JSON.parse(text.slice(at + MARK.length, text.indexOf(' -->', at))) as { run: string; groups: typeof groups };
      if (saved.run === RUN_ID) groups = saved.groups;
    }
  } catch {
    // no file or an unreadable one: start over
  }
  groups[group] = fig;
  fs.writeFileSync(FILE, render(groups));
}

function render(groups: Record<string, GroupFigures>): string {
  const all = Object.values(groups);
  const sum = (k: 'kills' | 'requests' | 'escapes' | 'violations' | 'checks') => all.reduce((n, g) => n + (g[k] ?? 0), 0);
  const clients = Math.max(0, ...all.map((g) => g.clients ?? 0));
  const order = ['crash', 'concurrency', 'fuzz', 'escapes', 'socket', 'disk', 'powercut', 'race', 'slow-disk', 'propagation', 'cluster'];
  const rows = Object.entries(groups)
    .sort(([a], [b]) => order.indexOf(a) - order.indexOf(b))
    .map(([, g]) => `| ${g.title} | ${(g.durationMs / 1000).toFixed(1)} s | ${g.checks} | ${g.violations} | ${g.seed ?? ''} | ${g.notes ?? ''} |`);
  const cpus = os.cpus();
  const missing = order.filter((g) => !groups[g]);
  return `# hostvol reliability figures

Written by the last long run of the reliability suite (\`npm run reliability\`, test/reliability/);
\`make test\` runs the short variants and does not touch this file. Replay a group with
\`RELIABILITY_SEED=<seed> npm run reliability -- -t '<group>'\`.

- Date: ${new Date().toISOString()}
- Machine: ${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()} (${os.arch()}), Node ${process.version}
${missing.length ? `- Groups without figures in this run (failed to run or not selected): ${missing.join(', ')}\n` : ''}
| figure | value |
|---|---|
| SIGKILL kills survived (each followed by a restart and a check of every invariant) | ${sum('kills') - (groups.powercut?.kills ?? 0)} |
| power cuts survived (hostvol killed and unsynced writes discarded; each followed by recovery and a check of every invariant) | ${groups.powercut?.kills ?? 0} |
| requests fuzzed | ${sum('requests')} |
| concurrent clients (largest group) | ${clients} |
| path escapes tried | ${sum('escapes')} |
| invariant checks | ${sum('checks')} |
| **invariant violations** | **${sum('violations')}** |

| group | duration | checks | violations | seed | details |
|---|---|---|---|---|---|
${rows.join('\n')}

${MARK}${JSON.stringify({ run: RUN_ID, groups })} -->
`;
}
