// A check of causes.ts on made-up samples (no server runs): every unmet target gets its sentence,
// built from the samples' values; a met target gets none. Run: node bench/out/bench/causes-check.js
import * as assert from 'node:assert/strict';
import { causes } from './causes';
import type { LoadResult } from './loadgen';
import { loadRows, otherRows } from './report';
import { durableFigures, emptySamples, LIST_BURST } from './scenarios';
import { targets, type EngineFigure } from './targets';

const r = (opsPerSec: number): LoadResult => ({
  ops: 100, errors: 0, elapsedMs: 1000, opsPerSec, p50Ms: 1000 / opsPerSec, p99Ms: 2000 / opsPerSec, loadgenCpu: 0.1, serverCpu: 0.5,
});
const s = emptySamples();
s.handoff = { tightUs: 150, idleUs: 500, idleMs: 5, n: 200 };
s.load['cr-c1'] = { floor: [r(400)], offloop: [r(250)], hostvol: [r(160)] };
s.load['cr-c16'] = { floor: [r(500)], offloop: [r(300)], hostvol: [r(320)] };
s.load['mu-rw'] = { floor: [r(500)], offloop: [r(460)], hostvol: [r(400)] }; // met: 0.8×
s.load['mu-ro'] = { floor: [r(500)], offloop: [r(330)], hostvol: [r(300)] };
s.startup['0'] = { floor: [150], hostvol: [950] };
s.startup['100000'] = { floor: [990], hostvol: [1700] };
s.rss[`after ${LIST_BURST} Lists, 100000 volumes`] = { floor: [240], hostvol: [227] };
s.rss['after List, 100000 volumes'] = { floor: [320], hostvol: [280] };
const engine: EngineFigure[] = [
  { mode: 'legacy', create: 1.13, run: 1.0, createMs: { local: 62, hostvol: 71 }, floorCreateMs: { floor: 66, offloop: 69, local: 62 } },
  { mode: 'managed', create: 1.05, run: 1.08, createMs: { local: 60, hostvol: 63 } },
];
const goals = targets({
  load: s.load, startup100k: s.startup['100000'], rssAfterLists: [227], rssSustained: [280], fsyncDelayMs: 200, engine,
});
const rows = [...loadRows(durableFigures(), s), ...otherRows(s)];
const out = causes(goals, rows, s, engine);
for (const l of out) process.stdout.write(`${l}\n\n`);

const about = (row: string) => out.find((l) => l.startsWith(`- **${row}`));
assert.equal(out.length, goals.filter((g) => g.met === false).length, 'one sentence per unmet target');
assert.equal(about('rw Mount+Unmount'), undefined, 'a met target gets no sentence');
const cr = about('Create+Remove pairs/s, c=1')!;
assert.match(cr, /reaches 250 pairs\/s \(0\.625× the floor's 400\), so the hand-offs alone put it below the 0\.7× limit/);
assert.match(cr, /hostvol is 0\.640× the off-loop floor/);
assert.match(cr, /7 worker round trips .* \(500 µs each; 150 µs in a tight loop\) come to 3\.50 ms/);
assert.match(about('ro Mount+Unmount')!, /Against the 500 pairs\/s limit: the floor 500, the off-loop floor 330 \(below it\), hostvol 300/);
assert.match(about('Create+Remove pairs/s, c=16')!, /off-loop floor, which commits each write alone, 250 → 300/);
assert.match(about('start-up')!, /the floor itself takes 990 ms .* leaves 10\.0 ms of the 1,000 ms limit/);
assert.match(about('peak RSS')!, /240 MB after the Lists \(itself over the 200 MB limit\) and 320 MB after sustained load \(itself over the 250 MB limit\)/);
const e = about('`docker volume create`')!;
assert.match(e, /legacy: `docker volume create` took 62\.0 ms .* 71\.0 ms with hostvol \(\+9\.00 ms\), where 1\.10× local allows \+6\.20 ms/);
assert.match(e, /the floor took \+4\.00 ms over local and the off-loop floor \+7\.00 ms, against \+6\.20 ms allowed here, so the plugin protocol and the same work with hostvol's hand-offs alone exceed/);
assert.doesNotMatch(e, /managed: `docker volume create`/, 'managed create met its limit');
assert.match(e, /managed `docker run --rm -v` at 1\.08× local: this run measured no cause for it/);
process.stdout.write('causes-check: ok\n');
