// Measured causes of the targets a run missed, written into BENCHMARKS.md next to the table.
import type { Row } from './report';
import type { Samples } from './scenarios';
import { fmt } from './stats';

/**
 * Measured causes for the targets that were missed, from the figures of this run (what the bench
 * cannot see from outside, such as where inside a Create the time goes, comes from profiling and is
 * stated as such in the summary the lead gets, not here).
 */
export function notes(rows: Row[], s: Samples, engineTargets: { text: string; met?: boolean }[] = []): string[] {
  const out: string[] = [];
  const row = (figure: string, metric: string) => rows.find((r) => r.figure === figure && r.metric === metric);
  const cr = row('Create+Remove pairs, c=1', 'pairs/s');
  const cr100k = row('Create+Remove pairs, c=1, 100,000 volumes', 'pairs/s');
  const mu = row('Mount+Unmount pairs, rw (no bind mount), c=1', 'pairs/s');
  if (cr && cr.met === false) {
    out.push(
      `- **Create+Remove below 300 pairs/s** (${fmt(cr.hostvol)}, p50 ${fmt(row('Create+Remove pairs, c=1', 'p50 µs')?.hostvol ?? NaN)} µs): Create and Remove each ` +
        'commit to SQLite with an fsync before answering (synchronous=FULL), and make or delete a directory with path checks around it. ' +
        (s.fsync ? `A 4 KiB append + fsync on this disk: p50 ${fmt(s.fsync.p50)} ms, p90 ${fmt(s.fsync.p90)} ms. ` : '') +
        (mu ? `Mount+Unmount of a rw volume (one fsync'd commit each, nothing else) reaches ${fmt(mu.hostvol)} pairs/s, ~${fmt(1000 / mu.hostvol / 2)} ms per durable request here. ` : '') +
        'Fewer synced commits per pair, or synchronous=NORMAL, are durability decisions outside src/server.ts.',
    );
  }
  // Only when it is much slower than next to 1,000 volumes, i.e. when Create still scans every volume.
  if (cr100k && cr && cr100k.hostvol < cr.hostvol / 2) {
    out.push(
      `- **Create+Remove next to 100,000 volumes**: ${fmt(cr100k.hostvol)} pairs/s (p50 ${fmt(row('Create+Remove pairs, c=1, 100,000 volumes', 'p50 µs')?.hostvol ?? NaN)} µs) against ${fmt(cr?.hostvol ?? NaN)} with 1,000: ` +
        "each Create compares the new directory with every volume's (driver.ts, checkPlacement), so its cost grows with the number of volumes.",
    );
  }
  const list10k = row('List, 10,000 volumes, c=1', 'requests/s');
  if (list10k && list10k.met === false) {
    out.push(
      `- **List at 10,000 volumes** ${fmt(list10k.ratio)}× the floor (at 1,000: ${fmt(row('List, 1,000 volumes, c=1', 'requests/s')?.ratio ?? NaN)}×, ` +
        `at 100,000: ${fmt(row('List, 100,000 volumes, c=1', 'requests/s')?.ratio ?? NaN)}×). The HTTP path is the floor's, and profiled in-process ` +
        "the reply costs the same to build from hostvol's volumes as from the floor's (driver.list() ~0.5 ms, JSON.stringify ~3 ms at 10,000 " +
        'for both), so the gap is in how the two processes run under load; it moves between runs and builds and was not pinned down.',
    );
  }
  const st = row('Start-up, 100,000 volumes (exec to first answered Get)', 'ms');
  const st0 = row('Start-up, 0 volumes (exec to first answered Get)', 'ms');
  if (st && st.met === false && st0) {
    out.push(
      `- **Start-up with 100,000 volumes** ${fmt(st.hostvol)} ms (floor ${fmt(st.floor)} ms): with no volumes hostvol answers after ${fmt(st0.hostvol)} ms ` +
        `(floor ${fmt(st0.floor)} ms: Node, modules, socket), so loading 100,000 records takes ~${fmt(st.hostvol - st0.hostvol)} ms, the floor's bare ` +
        `SELECT into a Map ~${fmt(st.floor - st0.floor)} ms. Both pay better-sqlite3 turning 700,000 column values into JS strings; hostvol also turns the records into volumes ` +
        '(driver state, leases) and loads more modules (zod, pino, commander) before it listens.',
    );
  }
  const burst = rows.find((r) => r.figure.startsWith('Peak RSS, 100,000 volumes, after start and'));
  const after = row('Peak RSS after start, 100,000 volumes', 'MB');
  const sustained = rows.find((r) => r.figure.startsWith('Peak RSS, 100,000 volumes, after the sustained'));
  if (burst && burst.met === false) {
    out.push(
      `- **Peak RSS with 100,000 volumes** ${fmt(burst.hostvol)} MB after start and a burst of Lists (floor ${fmt(burst.floor)} MB)` +
        (after ? `, ${fmt(after.hostvol)} MB right after start (floor ${fmt(after.floor)} MB)` : '') +
        ': each List of 100,000 volumes builds 100,000 objects, an 8.4 MB JSON string and its 8.4 MB Buffer, and V8 lets the heap grow ' +
        'before it collects them. The floor, which holds the least any plugin can, is above 200 MB too: the bound needs a smaller heap ' +
        "(Node's --max-old-space-size) or a List that makes less garbage, not a change in the HTTP layer.",
    );
  }
  if (sustained) {
    out.push(
      `- **Peak RSS under sustained List load** ${fmt(sustained.hostvol)} MB (floor ${fmt(sustained.floor)} MB): the same garbage, ` +
        'with Lists answered back to back for seconds; V8 collects it at its own pace. It is not retained state.',
    );
  }
  const create = engineTargets.find((t) => t.text.includes('volume create'));
  if (create && create.met === false) {
    out.push(
      "- **`docker volume create` end to end**: dockerd sends Get then Create; hostvol's Create records the volume, makes the directory and " +
        `marks it ready, with a synced commit (~${mu ? fmt(1000 / mu.hostvol / 2) : '?'} ms here, see Mount+Unmount) and a mkdir, where \`local\` ` +
        'makes a directory inside dockerd. The 15 % budget is ~4-5 ms of a ~30 ms CLI call, the order of that commit plus two plugin round trips.',
    );
  }
  return out;
}
