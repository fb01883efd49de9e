// The embedded store: volume records and mount leases in SQLite (WAL, synchronous=FULL), so every
// change is on disk before the caller answers. It knows records and counts, nothing of Docker.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { HostvolError } from '../errors';

/** `creating` and `removing` mark work in progress, so start-up can finish or undo it after a crash. */
export type RecordState = 'creating' | 'ready' | 'removing';

export interface VolumeRecord {
  name: string;
  path: string;
  options: string; // JSON, owned by the caller
  createdBy: 'hostvol' | 'existing';
  createdAt: string;
  state: RecordState;
  /** The first directory hostvol made for this volume (what to remove when undoing a create). */
  made: string | null;
}

export interface LeaseRecord {
  volume: string;
  id: string;
  count: number;
  bootId: string;
  /** The client generation the lease was recorded in (see Store.generation). */
  generation: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS volumes (
  name TEXT PRIMARY KEY, path TEXT NOT NULL, options TEXT NOT NULL, created_by TEXT NOT NULL,
  created_at TEXT NOT NULL, state TEXT NOT NULL, made TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
  volume TEXT NOT NULL, id TEXT NOT NULL, count INTEGER NOT NULL CHECK (count > 0), boot_id TEXT NOT NULL,
  generation INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (volume, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
`;

export class Store {
  private readonly db: Database.Database;
  private readonly stmts;
  private readonly file: string;

  constructor(stateDir: string) {
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const file = (this.file = path.join(stateDir, 'hostvol.db'));
    const cannotOpen = (err: Error) =>
      new HostvolError(`cannot open the state store ${file}: ${err.message}; ${stateDir} must be on a writable file system with free space`);
    try {
      // A short busy timeout: a locked store means another hostvol, and waiting would not help.
      this.db = new Database(file, { timeout: 100 });
    } catch (err) {
      throw err instanceof Database.SqliteError ? cannotOpen(err) : err;
    }
    try {
      // Exclusive locking: a second hostvol on the same state dir fails here instead of sharing it.
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.exec(SCHEMA); // the first write takes the exclusive lock
      // Stores written before leases had a generation get the column, every old lease in generation 0.
      const columns = this.db.pragma('table_info(leases)') as { name: string }[];
      if (!columns.some((c) => c.name === 'generation')) {
        this.db.exec('ALTER TABLE leases ADD COLUMN generation INTEGER NOT NULL DEFAULT 0');
      }
    } catch (err) {
      this.db.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') {
        throw new HostvolError(`state directory ${stateDir} is in use by another hostvol process`);
      }
      // A read-only file system shows up as an I/O error on the lock (SQLITE_IOERR_LOCK).
      throw err instanceof Database.SqliteError ? cannotOpen(err) : err;
    }
    this.stmts = {
      // A row left 'creating' by an undo whose delete failed (disk full) is replaced, never a live one.
      insert: this.db.prepare(
        `INSERT INTO volumes (name, path, options, created_by, created_at, state, made)
         VALUES (@name, @path, @options, @createdBy, @createdAt, @state, @made)
         ON CONFLICT (name) DO UPDATE SET path = excluded.path, options = excluded.options, created_by = excluded.created_by,
           created_at = excluded.created_at, state = excluded.state, made = excluded.made WHERE volumes.state = 'creating'`,
      ),
      setState: this.db.prepare('UPDATE volumes SET state = ? WHERE name = ?'),
      deleteVolume: this.db.prepare('DELETE FROM volumes WHERE name = ?'),
      deleteLeases: this.db.prepare('DELETE FROM leases WHERE volume = ?'),
      upsertLease: this.db.prepare(
        `INSERT INTO leases (volume, id, count, boot_id, generation) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (volume, id) DO UPDATE SET count = excluded.count, boot_id = excluded.boot_id,
           generation = excluded.generation`,
      ),
      getMeta: this.db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      setMeta: this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      deleteLease: this.db.prepare('DELETE FROM leases WHERE volume = ? AND id = ?'),
      dropOtherBoots: this.db.prepare('DELETE FROM leases WHERE boot_id <> ?'),
      volumes: this.db.prepare(
        `SELECT name, path, options, created_by AS createdBy, created_at AS createdAt, state, made FROM volumes`,
      ),
      leases: this.db.prepare('SELECT volume, id, count, boot_id AS bootId, generation FROM leases'),
    };
  }

  /**
   * Every volume record, one row at a time: with 100k volumes, an array of all rows kept alive while
   * they are turned into volumes cost ~30 MB of peak RSS (bench/, BENCHMARKS.md). No other store call
   * may run until the iteration ends.
   */
  volumes(): IterableIterator<VolumeRecord> {
    return shareRepeats(this.stmts.volumes.iterate() as IterableIterator<VolumeRecord>);
  }

  leases(): LeaseRecord[] {
    return this.stmts.leases.all() as LeaseRecord[];
  }

  insertVolume(rec: VolumeRecord): void {
    const { changes } = this.write(`record volume "${rec.name}"`, () => this.stmts.insert.run(rec));
    if (changes !== 1) throw new HostvolError(`state store ${this.file} already has a record of volume "${rec.name}"; restart hostvol`);
  }

  /** With `durable` false the mark skips its own fsync; it reaches the disk with the next durable write. */
  setState(name: string, state: RecordState, durable = true): void {
    this.write(`mark volume "${name}" ${state}`, () =>
      durable ? this.stmts.setState.run(state, name) : this.relaxed(() => this.stmts.setState.run(state, name)),
    );
  }

  /** Runs `fn` with synchronous=NORMAL: a WAL commit without fsync, still safe against a process crash. */
  private relaxed<T>(fn: () => T): T {
    this.db.pragma('synchronous = NORMAL');
    try {
      return fn();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  /** Forgets a volume and any leases it still had, in one transaction. */
  deleteVolume = (name: string): void => {
    this.write(`forget volume "${name}"`, () =>
      this.db.transaction(() => {
        this.stmts.deleteLeases.run(name);
        this.stmts.deleteVolume.run(name);
      })(),
    );
  };

  /** Records the count of one lease; a count of zero removes it. */
  setLease(volume: string, id: string, count: number, bootId: string, generation: number): void {
    this.write(`${count > 0 ? 'record' : 'release'} a mount of volume "${volume}"`, () =>
      count > 0 ? this.stmts.upsertLease.run(volume, id, count, bootId, generation) : this.stmts.deleteLease.run(volume, id),
    );
  }

  /** A counter the caller advances whenever its client starts afresh; 0 until first set. */
  generation(): number {
    return Number(this.stmts.getMeta.get('generation') ?? 0);
  }

  setGeneration(n: number): void {
    this.write('record the client generation', () => this.stmts.setMeta.run('generation', String(n)));
  }

  /** A failed write (disk full, read-only, I/O error) becomes an error that names the volume and the fix. */
  private write<T>(what: string, run: () => T): T {
    try {
      return run();
    } catch (err) {
      if (!(err instanceof Database.SqliteError)) throw err;
      throw new HostvolError(
        `cannot ${what} in the state store ${this.file}: ${err.message}; ` +
          'free space on its file system or make it writable, then try again',
      );
    }
  }

  /** Drops leases recorded under another boot: after a reboot no process can still hold them. */
  dropLeasesFromOtherBoots(bootId: string): number {
    return this.stmts.dropOtherBoots.run(bootId).changes;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/**
 * SQLite hands out a new string for every column of every row: with 100k volumes that is 100k copies
 * of 'ready', of 'hostvol', of the same options and of `made` (usually the path again), ~19 MB of
 * peak RSS (bench/). Records share one string for each repeated value instead.
 */
function* shareRepeats(rows: IterableIterator<VolumeRecord>): IterableIterator<VolumeRecord> {
  const seen = new Map<string, string>();
  const share = <T extends string>(s: T): T => {
    const known = seen.get(s);
    if (known !== undefined) return known as T;
    if (seen.size < 1000) seen.set(s, s);
    return s;
  };
  for (const r of rows) {
    yield {
      name: r.name,
      path: r.path,
      options: share(r.options),
      createdBy: share(r.createdBy),
      createdAt: r.createdAt,
      state: share(r.state),
      made: r.made === r.path ? r.path : r.made,
    };
  }
}
