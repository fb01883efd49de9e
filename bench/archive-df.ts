// `hostvol df`'s size walk against GNU du on the same trees, and how it scales: measureTree (what
// src/admin/sizes.ts calls for each volume) on trees of 10k and 100k files, against
// `du -s -B1` (disk usage: one fstatat per entry, the same system calls `du --apparent-size` and
// `du --inodes` make). Repetitions interleave the two, alternating which goes first, after an untimed
// warm-up of each (both read cached metadata). measureTree runs in this process, as it runs in the
// daemon; du as its own process. Its three figures are checked against du's before anything is timed.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { fmt, median } from './stats';

const run = promisify(execFile);
const REPO = path.resolve(__dirname, '../../..');
/* eslint-disable @typescript-eslint/no-require-imports */
const { openRoot } = require(path.join(REPO, 'dist/host/tree-dir')) as typeof import('../src/host/tree-dir');
const { measureTree } = require(path.join(REPO, 'dist/host/tree-walk')) as typeof import('../src/host/tree-walk');

/** `files` files of 0–4 KiB, 1,000 to a directory, and a hard link to every 500th (counted once by both). */
export function makeFileTree(dir: string, files: number): void {
  const pool = Buffer.alloc(4096, 0x61);
  for (let i = 0; i < files; i++) {
    const d = path.join(dir, `d${Math.floor(i / 1000)}`);
    if (i % 1000 === 0) fs.mkdirSync(d, { recursive: true });
    const p = path.join(d, `f${i}`);
    fs.writeFileSync(p, pool.subarray(0, (i * 7919) % 4097));
    if (i % 500 === 0) fs.linkSync(p, path.join(d, `l${i}`));
  }
}

async function hostvolDf(dir: string): Promise<{ s: number; bytes: number; apparentBytes: number; inodes: number }> {
  const began = performance.now();
  const d = await openRoot(dir);
  try {
    const r = await measureTree(d);
    return { s: (performance.now() - began) / 1000, ...r };
  } finally {
    await d.close();
  }
}

async function du(dir: string, ...flags: string[]): Promise<{ s: number; value: number }> {
  const began = performance.now();
  const { stdout } = await run('du', ['-s', ...flags, dir]);
  return { s: (performance.now() - began) / 1000, value: Number(stdout.split('\t')[0]) };
}

interface Row {
  files: number;
  hostvol: number[];
  du: number[];
  ratios: number[];
}

const spread = (xs: number[]) => `${fmt(Math.min(...xs) * 1000)}–${fmt(Math.max(...xs) * 1000)}`;
const perFileUs = (r: Row, who: 'hostvol' | 'du') => (median(r[who]) / r.files) * 1e6;

/** How a per-file cost changed from the smaller tree to the larger one, in words. */
function scaling(small: number, big: number): string {
  const r = big / small;
  if (Math.abs(r - 1) < 0.15) return `stays about the same (${fmt(small)} → ${fmt(big)} µs, ×${fmt(r)})`;
  return `${r > 1 ? 'grows' : 'falls'} from ${fmt(small)} to ${fmt(big)} µs (×${fmt(r)})`;
}

export async function runDfBench(opts: { tmp: string; sizes: number[]; reps: number; log: (l: string) => void }): Promise<string[]> {
  const rows: Row[] = [];
  for (const files of opts.sizes) {
    const dir = path.join(opts.tmp, `df-${files}`);
    makeFileTree(dir, files);
    try {
      // Warm-up, and the check that both count the same thing.
      const h = await hostvolDf(dir);
      const [b, a, i] = [await du(dir, '-B1'), await du(dir, '-B1', '--apparent-size'), await du(dir, '--inodes')];
      if (h.bytes !== b.value || h.apparentBytes !== a.value || h.inodes !== i.value) {
        throw new Error(`df of ${dir}: hostvol counted ${h.bytes} B / ${h.apparentBytes} B apparent / ${h.inodes} inodes, du ${b.value} / ${a.value} / ${i.value}`);
      }
      const row: Row = { files, hostvol: [], du: [], ratios: [] };
      for (let rep = 0; rep < opts.reps; rep++) {
        const t: Record<string, number> = {};
        for (const who of rep % 2 ? (['hostvol', 'du'] as const) : (['du', 'hostvol'] as const)) {
          t[who] = who === 'du' ? (await du(dir, '-B1')).s : (await hostvolDf(dir)).s;
          row[who].push(t[who]);
        }
        row.ratios.push(t.hostvol / t.du);
        opts.log(`  df ${files} files, rep ${rep + 1}: du ${fmt(t.du * 1000)} ms, hostvol ${fmt(t.hostvol * 1000)} ms`);
      }
      rows.push(row);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const [small, big] = [rows[0], rows[rows.length - 1]];
  const n = (x: number) => x.toLocaleString('en-US');
  return [
    `Trees of ${rows.map((r) => n(r.files)).join(' and ')} files of 0–4 KiB (1,000 a directory, a hard link to every 500th), ` +
      `${opts.reps} interleaved repetitions after a warm-up; medians, with the range over the repetitions. ` +
      `hostvol: \`measureTree\` (what \`hostvol df\` runs for each volume, one host-worker job a directory, as in the daemon), in the bench's own process; ` +
      'du: `du -s -B1` as a process (one fstatat per entry, as with `--apparent-size` or `--inodes`). ' +
      'Before timing, hostvol\'s bytes, apparent bytes and inodes were checked equal to `du -s -B1`, `du -s -B1 --apparent-size` and `du -s --inodes`.',
    '',
    '| files | du ms | hostvol ms | hostvol / du (time) | du µs/file | hostvol µs/file |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${n(r.files)} | ${fmt(median(r.du) * 1000)} (${spread(r.du)}) | ${fmt(median(r.hostvol) * 1000)} (${spread(r.hostvol)}) | ` +
        `${fmt(median(r.ratios))}× | ${fmt(perFileUs(r, 'du'))} | ${fmt(perFileUs(r, 'hostvol'))} |`,
    ),
    '',
    `At ${n(big.files)} files hostvol's df takes ${fmt(median(big.hostvol))} s, ${fmt(median(big.ratios))}× du's time ` +
      `(${median(big.ratios) <= 1 ? 'as fast as du or faster' : 'slower than du'}). ` +
      `From ${n(small.files)} to ${n(big.files)} files its cost per file ${scaling(perFileUs(small, 'hostvol'), perFileUs(big, 'hostvol'))}; ` +
      `du's ${scaling(perFileUs(small, 'du'), perFileUs(big, 'du'))}.`,
  ];
}

// `node bench/out/bench/archive-df.js [reps]`: this section alone.
if (require.main === module) {
  const tmp = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'hostvol-bench-df-'));
  runDfBench({ tmp, sizes: [10_000, 100_000], reps: Number(process.argv[2] ?? 5), log: (l) => console.log(l) })
    .then((lines) => console.log(lines.join('\n')))
    .finally(() => fs.rmSync(tmp, { recursive: true, force: true }));
}
