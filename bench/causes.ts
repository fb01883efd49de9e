// One sentence per target the run did not meet, under the targets table: the cause the run measured
// and the floor that bounds it. Every figure comes from this run's samples; the only constants are
// the targets' own limits (targets.ts) and the hand-off counts of the off-loop floor's design.
import { OFFLOOP_SERIAL_HANDOFFS } from './floor-offloop';
import type { Row } from './report';
import { LIST_BURST, type Samples } from './scenarios';
import { fmt, median } from './stats';
import { ENGINE_CREATE, ENGINE_RUN, GATES, RSS_LISTS_MB, RSS_SUSTAINED_MB, STARTUP_MS, STARTUP_RATIO, type EngineFigure, type TargetRow } from './targets';

const TITLES: Record<string, string> = {
  'cr-c1': 'Create+Remove pairs, c=1',
  'cr-c16': 'Create+Remove pairs, c=16',
  'mu-rw': 'Mount+Unmount pairs, rw, c=1',
  'mu-ro': 'Mount+Unmount pairs, ro, c=1',
};

const signed = (x: number) => (x < 0 ? `−${fmt(-x)}` : `+${fmt(x)}`);

export function causes(goals: TargetRow[], rows: Row[], s: Samples, engine: EngineFigure[]): string[] {
  const row = (id: string, metric: string) => rows.find((r) => r.figure === TITLES[id] && r.metric === metric);
  const h = s.handoff;
  const handoffs = (n: number) =>
    h ? ` ${n} worker round trips at this run's p50 after ${h.idleMs} ms idle (${fmt(h.idleUs)} µs each; ${fmt(h.tightUs)} µs in a tight loop) come to ${fmt((n * h.idleUs) / 1000)} ms.` : '';

  /** A durable figure against the off-loop floor: the same work with hostvol's hand-offs. */
  const offloop = (id: string, serial: number, how: string): string => {
    const ops = row(id, 'pairs/s');
    const p50 = row(id, 'p50 ms');
    if (ops?.offloop === undefined || !p50 || p50.offloop === undefined) return 'the off-loop floor did not run, so no cause was measured.';
    const ratioCond = GATES[id].find((c) => c.of === 'ratio');
    const limit = ratioCond?.limit ?? NaN;
    const r = ops.offloopRatio ?? NaN;
    // What the ratio limit says once the hand-offs are paid; hostvol's own share only where hostvol misses it.
    const verdict =
      r < limit
        ? `so the hand-offs alone put it below the ${limit}× limit`
        : `so the hand-offs alone stay within the ${limit}× limit` + (ops.ratio < limit ? " and the rest of the gap is hostvol's own" : '');
    const abs = GATES[id].find((c) => c.of === 'hostvol' && c.key === 'opsPerSec');
    const below = (x: number, lim: number) => (x < lim ? ' (below it)' : '');
    const absText = abs
      ? ` Against the ${abs.limit} pairs/s limit: the floor ${fmt(ops.floor)}${below(ops.floor, abs.limit)}, the off-loop floor ${fmt(ops.offloop)}${below(ops.offloop, abs.limit)}, ` +
        `hostvol ${fmt(ops.hostvol)} pairs/s.`
      : '';
    return (
      `the off-loop floor, which does the floor's work with hostvol's hand-offs (${how}), reaches ${fmt(ops.offloop)} pairs/s ` +
      `(${fmt(r)}× the floor's ${fmt(ops.floor)}), ${verdict}; hostvol is ${fmt(ops.vsOffloop ?? NaN)}× the off-loop floor. ` +
      `Per pair at p50: floor ${fmt(p50.floor)} ms, off-loop floor ${fmt(p50.offloop)} ms (${signed(p50.offloop - p50.floor)} ms), ` +
      `hostvol ${fmt(p50.hostvol)} ms (${signed(p50.hostvol - p50.offloop)} ms over the off-loop floor).${handoffs(serial)}${absText}`
    );
  };

  const why: Record<string, () => string> = {
    'cr-c1': () => offloop('cr-c1', OFFLOOP_SERIAL_HANDOFFS.createRemove, `${OFFLOOP_SERIAL_HANDOFFS.createRemove} in a row per pair`),
    'mu-rw': () => offloop('mu-rw', OFFLOOP_SERIAL_HANDOFFS.mountUnmount, 'in Mount and in Unmount one commit and one host job side by side'),
    'mu-ro': () => offloop('mu-ro', OFFLOOP_SERIAL_HANDOFFS.mountUnmount, 'in Mount and in Unmount one commit and one host job side by side'),
    'cr-c16': () => {
      const c1 = row('cr-c1', 'pairs/s');
      const c16 = row('cr-c16', 'pairs/s');
      if (c1?.offloop === undefined || c16?.offloop === undefined) return 'the off-loop floor did not run, so no cause was measured.';
      return (
        `from 1 to 16 clients the floor goes ${fmt(c1.floor)} → ${fmt(c16.floor)} pairs/s (${fmt(c16.floor / c1.floor)}×) and the off-loop floor, ` +
        `which commits each write alone, ${fmt(c1.offloop)} → ${fmt(c16.offloop)} (${fmt(c16.offloop / c1.offloop)}×); hostvol ${fmt(c1.hostvol)} → ${fmt(c16.hostvol)}.`
      );
    },
    startup: () => {
      const at = (n: string, k: 'floor' | 'hostvol') => median(s.startup[n]?.[k] ?? []);
      const f = at('100000', 'floor');
      if (!Number.isFinite(f)) return 'start-up was not measured.';
      return (
        `the floor itself takes ${fmt(f)} ms from exec to its first answered Get at 100,000 volumes (${fmt(at('0', 'floor'))} ms with 0 volumes), ` +
        (f < STARTUP_MS
          ? `which leaves ${fmt(STARTUP_MS - f)} ms of the ${fmt(STARTUP_MS)} ms limit for everything hostvol does beyond it`
          : `itself over the ${fmt(STARTUP_MS)} ms limit`) +
        `, and ${STARTUP_RATIO}× the floor is ${fmt(STARTUP_RATIO * f)} ms; ` +
        `hostvol takes ${fmt(at('0', 'hostvol'))} ms at 0 volumes and ${fmt(at('100000', 'hostvol'))} ms at 100,000.`
      );
    },
    rss: () => {
      const m = (label: string, k: 'floor' | 'hostvol') => median(s.rss[label]?.[k] ?? []);
      const lists = `after ${LIST_BURST} Lists, 100000 volumes`;
      const sust = 'after List, 100000 volumes';
      const over = (x: number, lim: number) => (x > lim ? ` (itself over the ${fmt(lim)} MB limit)` : '');
      return (
        `the floor at the same points: ${fmt(m(lists, 'floor'))} MB after the Lists${over(m(lists, 'floor'), RSS_LISTS_MB)} and ` +
        `${fmt(m(sust, 'floor'))} MB after sustained load${over(m(sust, 'floor'), RSS_SUSTAINED_MB)} (hostvol ${fmt(m(lists, 'hostvol'))} and ${fmt(m(sust, 'hostvol'))} MB).`
      );
    },
    engine: () => {
      const p50 = row('cr-c1', 'p50 ms');
      const pair = p50
        ? ` In the durable figures a Create+Remove pair (c=1, p50) takes hostvol ${fmt(p50.hostvol - p50.floor)} ms longer than the floor` +
          (p50.offloop !== undefined ? ` and the off-loop floor ${fmt(p50.offloop - p50.floor)} ms longer` : '') + '; a Create is one of the pair\'s two requests.'
        : '';
      // The floors run as legacy plugins only: what they add over local is measured once, in legacy mode.
      const floors = engine.find((e) => e.floorCreateMs)?.floorCreateMs;
      const bound = (allowed: number): string => {
        if (!floors) return '';
        const f = floors.floor - floors.local;
        const o = floors.offloop - floors.local;
        const verdict =
          o > allowed
            ? 'so the plugin protocol and the same work with hostvol\'s hand-offs alone exceed what the limit allows'
            : f > allowed
              ? 'so the plugin protocol and the same work alone exceed what the limit allows'
              : "so the floors stay within the limit and the rest is hostvol's own";
        return (
          `; through the same dockerd in the same rounds (legacy plugins) the floor took ${signed(f)} ms over local and the off-loop floor ${signed(o)} ms, against +${fmt(allowed)} ms allowed here, ${verdict}`
        );
      };
      const creates = engine
        .filter((e) => e.createMs && (e.create ?? Infinity) > ENGINE_CREATE)
        .map((e) => {
          const { local, hostvol } = e.createMs!;
          const allowed = (ENGINE_CREATE - 1) * local;
          return `${e.mode}: \`docker volume create\` took ${fmt(local)} ms with the local driver and ${fmt(hostvol)} ms with hostvol (${signed(hostvol - local)} ms), where ${fmt(ENGINE_CREATE)}× local allows +${fmt(allowed)} ms${bound(allowed)}`;
        });
      const runs = engine
        .filter((e) => e.run !== undefined && e.run > ENGINE_RUN)
        .map((e) => ` ${e.mode} \`docker run --rm -v\` at ${fmt(e.run!)}× local: this run measured no cause for it.`);
      if (!creates.length && !runs.length) return 'the engine part did not run, so no cause was measured.';
      return `${creates.length ? `${creates.join('; ')}.${pair}` : ''}${runs.join('')}`.trim();
    },
  };
  const out: string[] = [];
  for (const g of goals) {
    if (g.met !== false) continue;
    const sentence = (why[g.key] ?? (() => 'this run measured no cause for it.'))();
    out.push(`- **${g.row}** (not met): ${sentence}`);
  }
  return out;
}
