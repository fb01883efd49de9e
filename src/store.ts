// The embedded store: volume records and mount leases in SQLite (WAL, synchronous=FULL), so every
// change is on disk before the caller answers. It knows records and counts, nothing of Docker.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { HostvolError } from './errors';

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
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS volumes (
  name TEXT PRIMARY KEY, path TEXT NOT NULL, options TEXT NOT NULL, created_by TEXT NOT NULL,
  created_at TEXT NOT NULL, state TEXT NOT NULL, made TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
  volume TEXT NOT NULL, id TEXT NOT NULL, count INTEGER NOT NULL CHECK (count > 0), boot_id TEXT NOT NULL,
  PRIMARY KEY (volume, id)
) WITHOUT ROWID;
`;

export class Store {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(stateDir: string) {
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const file = path.join(stateDir, 'hostvol.db');
    // A short busy timeout: a locked store means another hostvol, and waiting would not help.
    this.db = new Database(file, { timeout: 100 });
    try {
      // Exclusive locking: a second hostvol on the same state dir fails here instead of sharing it.
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.exec(SCHEMA); // the first write takes the exclusive lock
    } catch (err) {
      this.db.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') {
        throw new HostvolError(`state directory ${stateDir} is in use by another hostvol process`);
      }
      throw err;
    }
    this.stmts = {
      insert: this.db.prepare(
        `INSERT INTO volumes (name, path, options, created_by, created_at, state, made)
         VALUES (@name, @path, @options, @createdBy, @createdAt, @state, @made)`,
      ),
      setState: this.db.prepare('UPDATE volumes SET state = ? WHERE name = ?'),
      deleteVolume: this.db.prepare('DELETE FROM volumes WHERE name = ?'),
      deleteLeases: this.db.prepare('DELETE FROM leases WHERE volume = ?'),
      upsertLease: this.db.prepare(
        `INSERT INTO leases (volume, id, count, boot_id) VALUES (?, ?, ?, ?)
         ON CONFLICT (volume, id) DO UPDATE SET count = excluded.count, boot_id = excluded.boot_id`,
      ),
      deleteLease: this.db.prepare('DELETE FROM leases WHERE volume = ? AND id = ?'),
      dropOtherBoots: this.db.prepare('DELETE FROM leases WHERE boot_id <> ?'),
      volumes: this.db.prepare(
        `SELECT name, path, options, created_by AS createdBy, created_at AS createdAt, state, made FROM volumes`,
      ),
      leases: this.db.prepare('SELECT volume, id, count, boot_id AS bootId FROM leases'),
    };
  }

  volumes(): VolumeRecord[] {
    return this.stmts.volumes.all() as VolumeRecord[];
  }

  leases(): LeaseRecord[] {
    return this.stmts.leases.all() as LeaseRecord[];
  }

  insertVolume(rec: VolumeRecord): void {
    this.stmts.insert.run(rec);
  }

  setState(name: string, state: RecordState): void {
    this.stmts.setState.run(state, name);
  }

  /** Forgets a volume and any leases it still had, in one transaction. */
  deleteVolume = (name: string): void => {
    this.db.transaction(() => {
      this.stmts.deleteLeases.run(name);
      this.stmts.deleteVolume.run(name);
    })();
  };

  /** Records the count of one lease; a count of zero removes it. */
  setLease(volume: string, id: string, count: number, bootId: string): void {
    if (count > 0) this.stmts.upsertLease.run(volume, id, count, bootId);
    else this.stmts.deleteLease.run(volume, id);
  }

  /** Drops leases recorded under another boot: after a reboot no process can still hold them. */
  dropLeasesFromOtherBoots(bootId: string): number {
    return this.stmts.dropOtherBoots.run(bootId).changes;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
