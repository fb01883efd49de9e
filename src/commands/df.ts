// hostvol df: disk usage and inodes of each volume and in total, and the free space of each file
// system they are on (what `docker system df -v` leaves out for plugin volumes).
//
// With stderr a terminal, the CLI asks the daemon a few volumes at a time (GET /df?name=X&name=Y…)
// so that it can show how far it has got: volumes done of all, bytes and files so far, elapsed and
// ETA by volumes. It then adds the answers up into the same DiskUsage one GET /df gives. Otherwise it
// makes that one request, as before: nothing on stderr, and stdout as it always was.
import type { Command } from 'commander';
import type { DiskUsage, FilesystemSpace, VolumeSize } from '../admin/sizes';
import type { VolumeSummary } from '../admin/volumes-routes';
import { terminalBar } from './archive-support';
import type { AdminClient } from './client';
import { adminCommand, humanBytes, print, table, withAdmin, type CommonFlags } from './common';

function human(u: DiskUsage): string {
  const rows = u.volumes.map((v) => (v.error ? [v.name, '-', '-', '-', v.error] : [v.name, humanBytes(v.bytes!), humanBytes(v.apparentBytes!), v.inodes!, '']));
  rows.push(['TOTAL', humanBytes(u.total.bytes), humanBytes(u.total.apparentBytes), u.total.inodes, '']);
  const fsRows = u.filesystems.map((f) => [f.path, humanBytes(f.freeBytes), humanBytes(f.totalBytes), f.freeInodes, f.volumes]);
  return `${table(['VOLUME', 'SIZE', 'APPARENT', 'INODES', 'ERROR'], rows)}\n${table(['FILESYSTEM OF', 'FREE', 'SIZE', 'FREE INODES', 'VOLUMES'], fsRows)}`;
}

const dfRoute = (names: string[]) => `/df${names.length ? `?${names.map((n) => `name=${encodeURIComponent(n)}`).join('&')}` : ''}`;

/**
 * Requests in flight at once, and how many volumes each asks for: the daemon walks up to four trees
 * at a time for one GET /df (sizes.ts), so two requests keep it as busy as one big request while one
 * finishes its last tree; batches of about a hundredth of the volumes keep the per-request cost (a
 * round trip, a statfs) small next to the walks on 1,000 volumes, and still move the line in steps
 * of about 1%.
 */
const LANES = 2;
const STEPS = 100;
/** Names in one request at most: 50 anonymous names (64 hex digits) keep the URL near 3.5 kB, far below Node's 16 kB header limit. */
const MAX_BATCH = 50;

/**
 * What one GET /df for all of `answers`' volumes would have answered: the volumes sorted by name,
 * their sums, and per file system (by device) the volumes on it. `order` is the order the volumes
 * were asked in, which decides which volume names a file system and the file systems' order.
 */
export function mergeUsage(order: string[], answers: DiskUsage[]): DiskUsage {
  const byName = new Map<string, VolumeSize>();
  const space = new Map<number, FilesystemSpace>();
  for (const a of answers) {
    for (const v of a.volumes) byName.set(v.name, v);
    for (const f of a.filesystems) space.set(f.dev, f);
  }
  const total = { bytes: 0, apparentBytes: 0, inodes: 0 };
  const filesystems = new Map<number, FilesystemSpace>();
  for (const name of order) {
    const v = byName.get(name);
    if (!v) continue;
    total.bytes += v.bytes ?? 0;
    total.apparentBytes += v.apparentBytes ?? 0;
    total.inodes += v.inodes ?? 0;
    const f = v.dev === undefined ? undefined : space.get(v.dev);
    if (!f) continue; // as the daemon does: a file system it could not statfs is left out
    const seen = filesystems.get(f.dev);
    filesystems.set(f.dev, seen ? { ...seen, volumes: seen.volumes + 1 } : { ...f, path: v.path, volumes: 1 });
  }
  const volumes = [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  return { volumes, total, filesystems: [...filesystems.values()] };
}

/**
 * GET /df a batch of volumes at a time, LANES at once, drawing the progress line meanwhile. An error
 * (a name that does not exist) stops the asking; the one thrown is that of the first such name in
 * `names`' order, the one a single GET /df would have named (the daemon checks a batch's names in order).
 */
async function measureInBatches(c: AdminClient, names: string[], bar: NonNullable<ReturnType<typeof terminalBar>>): Promise<DiskUsage> {
  const size = Math.min(MAX_BATCH, Math.max(1, Math.ceil(names.length / STEPS)));
  const batches = Array.from({ length: Math.ceil(names.length / size) }, (_, i) => names.slice(i * size, (i + 1) * size));
  const answers: DiskUsage[] = [];
  const failed = new Map<number, unknown>();
  let next = 0;
  let done = 0;
  const sums = { bytes: 0, inodes: 0 };
  const payload = () => ({ bytes: humanBytes(sums.bytes), files: sums.inodes });
  bar.start(names.length, 0, payload());
  const lane = async () => {
    while (next < batches.length && failed.size === 0) {
      const i = next++;
      let answer: DiskUsage;
      try {
        answer = await c.json<DiskUsage>('GET', dfRoute(batches[i]));
      } catch (err) {
        failed.set(i, err);
        continue;
      }
      answers.push(answer);
      sums.bytes += answer.total.bytes;
      sums.inodes += answer.total.inodes;
      done += batches[i].length;
      bar.update(done, payload());
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(LANES, batches.length) }, lane));
  } finally {
    bar.stop();
  }
  if (failed.size) throw failed.get(Math.min(...failed.keys()));
  return mergeUsage(names, answers);
}

export function dfCommand(): Command {
  return adminCommand('df', 'disk usage per volume and free space per file system')
    .argument('[name...]', 'only these volumes')
    .action(async (names: string[], flags: CommonFlags) => {
      const bar = terminalBar('df [{bar}] {value}/{total} volumes, {bytes} in {files} files, {duration_formatted} ETA {eta_formatted}');
      const usage = await withAdmin(flags, async (c) => {
        if (!bar) return c.json<DiskUsage>('GET', dfRoute(names));
        const wanted = names.length ? [...new Set(names)] : (await c.json<VolumeSummary[]>('GET', '/volumes')).map((v) => v.name);
        return measureInBatches(c, wanted, bar);
      });
      print(flags, usage, () => human(usage));
    });
}
