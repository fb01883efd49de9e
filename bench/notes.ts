// Sentences for BENCHMARKS.md next to the targets. Each one states values this run measured (and
// differences of them); none names a cause the run did not measure, and none holds a typed-in figure.
import type { Row } from './report';
import type { Samples } from './scenarios';
import { fmt } from './stats';

export function notes(rows: Row[], s: Samples): string[] {
  const out: string[] = [];
  const row = (figure: string, metric: string) => rows.find((r) => r.figure === figure && r.metric === metric);
  if (s.fsync) {
    out.push(`- One 4 KiB append + fsync in the run's directory (200 in a row, \`measureFsync\` in bench/scenarios.ts): p50 ${fmt(s.fsync.p50)} ms, p90 ${fmt(s.fsync.p90)} ms.`);
  }
  if (s.handoff) {
    const h = s.handoff;
    out.push(
      `- One round trip to a worker thread (a job that does nothing, p50 of ${h.n}, \`measureHandoff\` in bench/handoff.ts): ` +
        `${fmt(h.tightUs)} µs in a tight loop, ${fmt(h.idleUs)} µs when the thread had idled ${h.idleMs} ms first.`,
    );
  }
  if (s.shim) {
    out.push(
      'notRun' in s.shim
        ? `- Get p99 with fsync delayed: not run: ${s.shim.notRun}.`
        : `- With the fsync-delay shim loaded (asked for ${fmt(s.shim.delayMs)} ms), one fsync under the run's directory took ${fmt(s.shim.fsyncMs)} ms.`,
    );
  }
  // Per pair, at p50: what each durable figure costs hostvol beyond the floor's same work.
  for (const f of ['Create+Remove pairs, c=1', 'Mount+Unmount pairs, rw, c=1', 'Mount+Unmount pairs, ro, c=1']) {
    const p = row(f, 'p50 ms');
    if (p) out.push(`- ${f}: p50 per pair ${fmt(p.hostvol)} ms in hostvol, ${fmt(p.floor)} ms in the floor (difference ${fmt(p.hostvol - p.floor)} ms).`);
  }
  const c1 = row('Create+Remove pairs, c=1', 'pairs/s');
  const c16 = row('Create+Remove pairs, c=16', 'pairs/s');
  if (c1 && c16) {
    out.push(`- Create+Remove from 1 to 16 clients: hostvol ${fmt(c1.hostvol)} → ${fmt(c16.hostvol)} pairs/s (${fmt(c16.hostvol / c1.hostvol)}×), the floor ${fmt(c1.floor)} → ${fmt(c16.floor)} (${fmt(c16.floor / c1.floor)}×).`);
  }
  const cr100k = row('Create+Remove pairs, c=1, 100,000 volumes', 'pairs/s');
  if (c1 && cr100k) {
    out.push(`- Create+Remove c=1 next to 100,000 volumes: hostvol ${fmt(cr100k.hostvol)} pairs/s (${fmt(c1.hostvol)} next to 1,000), the floor ${fmt(cr100k.floor)} (${fmt(c1.floor)}).`);
  }
  const st0 = row('Start-up, 0 volumes (exec to first answered Get)', 'ms');
  const st = row('Start-up, 100,000 volumes (exec to first answered Get)', 'ms');
  if (st0 && st) {
    out.push(
      `- Start-up: 100,000 volumes add ${fmt(st.hostvol - st0.hostvol)} ms to hostvol's (${fmt(st0.hostvol)} → ${fmt(st.hostvol)} ms) ` +
        `and ${fmt(st.floor - st0.floor)} ms to the floor's (${fmt(st0.floor)} → ${fmt(st.floor)} ms).`,
    );
  }
  const rss0 = rows.find((r) => r.figure === 'Peak RSS after start, 100,000 volumes');
  const rssL = rows.find((r) => r.figure.startsWith('Peak RSS, 100,000 volumes, after start and'));
  if (rss0 && rssL) {
    out.push(`- Peak RSS at 100,000 volumes: ${fmt(rss0.hostvol)} MB after start, ${fmt(rssL.hostvol)} MB after the Lists in hostvol; ${fmt(rss0.floor)} and ${fmt(rssL.floor)} MB in the floor.`);
  }
  return out;
}
