// Start-up's read of the SQLite store, on the main thread with a short-lived connection, before the
// writer (sqlite-worker.ts) takes the file for good. Measured with 100k volumes, this beat reading
// on the worker and posting the rows, in time and in peak RSS: the structured clone costs both threads.
import * as fs from 'node:fs';
import Database from 'better-sqlite3';
import { HostvolError } from '../errors';
import type { LeaseRecord, RecordState, Snapshot, VolumeRecord } from './store';

const STATES: readonly RecordState[] = ['creating', 'ready', 'removing'];
const CREATORS: readonly VolumeRecord['createdBy'][] = ['hostvol', 'existing'];

/**
 * Every record in `file` (none when it does not exist). Throws better-sqlite3's errors as they come
 * (SQLITE_BUSY when another hostvol holds the file) for the caller to explain.
 */
export function readStore(file: string): Snapshot {
  if (!fs.existsSync(file)) return { volumes: [], leases: [], generation: 0 };
  // A short busy timeout: a locked store means another hostvol, and waiting would not help.
  const db = new Database(file, { timeout: 100, fileMustExist: true });
  try {
    // Exclusive before the first read, as the writer: no -shm file, and a running hostvol is
    // detected here. Closing checkpoints a WAL left by a crash into the database file.
    db.pragma('locking_mode = EXCLUSIVE');
    const tables = new Set(db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[]);
    // Stores written before leases had a generation: the writer adds the column, every lease in 0.
    const hasGeneration =
      tables.has('leases') && (db.pragma('table_info(leases)') as { name: string }[]).some((c) => c.name === 'generation');
    const leases = tables.has('leases')
      ? (db
          .prepare(`SELECT volume, id, count, boot_id AS bootId, ${hasGeneration ? 'generation' : '0 AS generation'} FROM leases`)
          .all() as LeaseRecord[])
      : [];
    const generation = tables.has('meta') ? Number(db.prepare(`SELECT value FROM meta WHERE key = 'generation'`).pluck().get() ?? 0) : 0;
    const volumes = tables.has('volumes') ? readVolumes(db, file) : [];
    return { volumes, leases, generation };
  } finally {
    db.close();
  }
}

/**
 * The volumes as columns, turned into records one at a time as the caller iterates: with 100k
 * volumes an array of records kept alive while they are turned into volumes cost ~30 MB of peak RSS
 * (bench/, BENCHMARKS.md); the columns hold little more than the strings the volumes keep anyway.
 * SQLite hands out a new string for every column of every row: 100k copies of the same options,
 * ~19 MB of peak RSS (bench/); repeated values share one string instead (the first 1000 distinct).
 */
function readVolumes(db: Database.Database, file: string): Iterable<VolumeRecord> {
  const n = Number(db.prepare('SELECT count(*) FROM volumes').pluck().get());
  const names = new Array<string>(n);
  const paths = new Array<string>(n);
  const options = new Array<string>(n);
  const createdAt = new Array<string>(n);
  // State and creator are one byte; `made` is stored only where it is not the path itself.
  const codes = new Uint8Array(n);
  const made = new Map<number, string | null>();
  const seen = new Map<string, string>();
  const share = (s: string): string => {
    const known = seen.get(s);
    if (known !== undefined) return known;
    if (seen.size < 1000) seen.set(s, s);
    return s;
  };
  const stmt = db.prepare('SELECT name, path, options, created_by, created_at, state, made FROM volumes').raw();
  let i = 0;
  for (const row of stmt.iterate() as IterableIterator<[string, string, string, string, string, string, string | null]>) {
    if (i === n) break; // nothing can write between the count and the rows: the lock is exclusive
    [names[i], paths[i]] = row;
    options[i] = share(row[2]);
    createdAt[i] = row[4];
    codes[i] = code(file, STATES, row[5], 'state') * CREATORS.length + code(file, CREATORS, row[3], 'created_by');
    if (row[6] !== row[1]) made.set(i, row[6]);
    i++;
  }
  return {
    *[Symbol.iterator]() {
      for (let j = 0; j < i; j++) {
        yield {
          name: names[j],
          path: paths[j],
          options: options[j],
          createdBy: CREATORS[codes[j] % CREATORS.length],
          createdAt: createdAt[j],
          state: STATES[Math.floor(codes[j] / CREATORS.length)],
          made: made.has(j) ? made.get(j)! : paths[j],
        };
      }
    },
  };
}

function code<T extends string>(file: string, known: readonly T[], value: string, column: string): number {
  const c = known.indexOf(value as T);
  if (c < 0) {
    throw new HostvolError(`the state store ${file} has a volume record with ${column} "${value}", which this hostvol does not know; was it written by a newer hostvol?`);
  }
  return c;
}
