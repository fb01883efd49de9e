// The SQLite store's writer: one connection on a worker thread that owns the database file
// (exclusive lock) and commits whole batches of changes, so one fsync covers every change that
// queued up while the previous commit was in flight, and a slow fsync never stalls the event loop.
import type { LeaseRecord, RecordState, VolumeRecord } from './store';

export const SCHEMA = `
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

/** One change, as sent to the worker. */
export type Op =
  | { op: 'insertVolume'; rec: VolumeRecord }
  | { op: 'setState'; name: string; state: RecordState }
  | { op: 'deleteVolume'; name: string }
  | { op: 'setLease'; lease: LeaseRecord; exclusive: boolean }
  | { op: 'setGeneration'; n: number }
  | { op: 'dropLeasesFromOtherBoots'; bootId: string }
  // A read, sent through the same queue: it sees every change queued before it, and writes nothing.
  | { op: 'leases'; volume: string | null };

/**
 * What became of one change: rows changed (`existing`: the record found instead of inserting one;
 * `token`: the fencing token of a lease taken), or why it failed (`conflict`: refused by a rule).
 */
export type OpResult =
  | { ok: true; changes: number; existing?: VolumeRecord; token?: number; leases?: LeaseRecord[] }
  | { ok: false; code: string; message: string; conflict?: boolean };

export interface WorkerData {
  betterSqlite3: string;
  file: string;
  dir: string;
  /** The state directory was made by this start: its own entry in the parent must be synced too. */
  madeDir: boolean;
  schema: string;
}

export type ToWorker = { type: 'open' } | { type: 'batch'; ops: Op[] } | { type: 'close' };
export type FromWorker =
  | { type: 'opened' }
  | { type: 'openFailed'; code: string; message: string }
  | { type: 'batch'; results: OpResult[]; committed: boolean }
  | { type: 'closed' };

/**
 * The worker's whole program, run from its source text (`eval`, as src/host/libc.ts does), so it
 * works the same from dist/ and under ts-jest. It may use only `require` and what it defines itself.
 */
export function sqliteWorkerMain(): void {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { parentPort, workerData } = require('node:worker_threads');
  const fs = require('node:fs');
  const path = require('node:path');
  const Database = require(workerData.betterSqlite3);
  const data = workerData as WorkerData;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let db: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let stmts: Record<string, any>;

  const fsyncDir = (dir: string) => {
    const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  };

  const open = () => {
    // A commit is durable only if the files it went to can be found after a power cut: when this
    // start creates the database or its WAL, their directory entries are synced before any commit.
    const existed = fs.existsSync(data.file) && fs.existsSync(`${data.file}-wal`);
    // A short busy timeout: a locked store means another hostvol, and waiting would not help.
    db = new Database(data.file, { timeout: 100 });
    try {
      // Exclusive before the first access: the lock is held for good (a second hostvol is refused)
      // and the WAL index lives in this process's heap, with no -shm file mapped.
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      // FULL: every commit is fsynced before it returns, so a resolved promise survives a power cut.
      db.pragma('synchronous = FULL');
      db.exec(data.schema);
      // Stores written before leases had a generation get the column, every old lease in generation 0.
      const columns = db.pragma('table_info(leases)') as { name: string }[];
      if (!columns.some((c) => c.name === 'generation')) {
        db.exec('ALTER TABLE leases ADD COLUMN generation INTEGER NOT NULL DEFAULT 0');
      }
      db.exec('BEGIN IMMEDIATE; COMMIT'); // takes the write lock now, not at the first change
    } catch (err) {
      db.close();
      throw err;
    }
    if (!existed) {
      fsyncDir(data.dir);
      if (data.madeDir) fsyncDir(path.dirname(data.dir));
    }
    stmts = {
      // A row left 'creating' by an undo whose delete failed (disk full) is replaced, never a live one.
      insert: db.prepare(
        `INSERT INTO volumes (name, path, options, created_by, created_at, state, made)
         VALUES (@name, @path, @options, @createdBy, @createdAt, @state, @made)
         ON CONFLICT (name) DO UPDATE SET path = excluded.path, options = excluded.options, created_by = excluded.created_by,
           created_at = excluded.created_at, state = excluded.state, made = excluded.made WHERE volumes.state = 'creating'`,
      ),
      setState: db.prepare('UPDATE volumes SET state = ? WHERE name = ?'),
      deleteVolume: db.prepare('DELETE FROM volumes WHERE name = ?'),
      deleteLeases: db.prepare('DELETE FROM leases WHERE volume = ?'),
      upsertLease: db.prepare(
        `INSERT INTO leases (volume, id, count, boot_id, generation) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (volume, id) DO UPDATE SET count = excluded.count, boot_id = excluded.boot_id,
           generation = excluded.generation`,
      ),
      deleteLease: db.prepare('DELETE FROM leases WHERE volume = ? AND id = ?'),
      getVolume: db.prepare(
        'SELECT name, path, options, created_by AS createdBy, created_at AS createdAt, state, made FROM volumes WHERE name = ?',
      ),
      otherLease: db.prepare('SELECT id FROM leases WHERE volume = ? AND id <> ? LIMIT 1'),
      // The fencing token: one counter for the whole store, advanced by every lease taken.
      fence: db.prepare(
        `INSERT INTO meta (key, value) VALUES ('fence', '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING CAST(value AS INTEGER) AS token`,
      ),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      dropOtherBoots: db.prepare('DELETE FROM leases WHERE boot_id <> ?'),
      allLeases: db.prepare('SELECT volume, id, count, boot_id AS bootId, generation FROM leases ORDER BY volume, id'),
      leasesOf: db.prepare('SELECT volume, id, count, boot_id AS bootId, generation FROM leases WHERE volume = ? ORDER BY id'),
    };
  };

  const conflict = (message: string) => Object.assign(new Error(message), { code: 'CONFLICT', conflict: true });

  // The cluster rules of the Store interface over this store's own rows: there is no other node, so
  // 'removing' and deleteVolume are never refused; a record found on insert is handed back; a lease
  // needs a ready volume, and an exclusive one no other Mount ID.
  const apply = (o: Op): { changes: number; existing?: VolumeRecord; token?: number; leases?: LeaseRecord[] } => {
    switch (o.op) {
      case 'insertVolume': {
        const { changes } = stmts.insert.run(o.rec);
        return changes === 1 ? { changes } : { changes: 0, existing: stmts.getVolume.get(o.rec.name) };
      }
      case 'setState':
        return { changes: stmts.setState.run(o.state, o.name).changes };
      case 'deleteVolume':
        stmts.deleteLeases.run(o.name);
        return { changes: stmts.deleteVolume.run(o.name).changes };
      case 'setLease': {
        const l = o.lease;
        if (l.count <= 0) return { changes: stmts.deleteLease.run(l.volume, l.id).changes };
        const v = stmts.getVolume.get(l.volume) as VolumeRecord | undefined;
        if (v?.state !== 'ready') throw conflict(`volume "${l.volume}" is ${v ? v.state === 'removing' ? 'being removed' : 'being created' : 'not recorded'}; it cannot be mounted`);
        if (o.exclusive && stmts.otherLease.get(l.volume, l.id)) {
          throw conflict(`volume "${l.volume}" is single-writer (option Z) and is already mounted by another container; stop that container first, or use a volume without Z`);
        }
        const { changes } = stmts.upsertLease.run(l.volume, l.id, l.count, l.bootId, l.generation);
        return { changes, token: (stmts.fence.get() as { token: number }).token };
      }
      case 'setGeneration':
        return { changes: stmts.setMeta.run('generation', String(o.n)).changes };
      case 'dropLeasesFromOtherBoots':
        return { changes: stmts.dropOtherBoots.run(o.bootId).changes };
      case 'leases':
        return { changes: 0, leases: o.volume === null ? stmts.allLeases.all() : stmts.leasesOf.all(o.volume) };
    }
  };

  const failure = (err: unknown): OpResult => {
    const e = err as { code?: string; message?: string; conflict?: boolean };
    return { ok: false, code: e.code ?? 'ERROR', message: String(e.message ?? err), conflict: e.conflict };
  };

  // One transaction for the whole batch, one SAVEPOINT per change: a change that fails (a name that
  // exists) is undone alone and the rest commit. A commit that fails fails every change in it.
  const runBatch = (ops: Op[]): { results: OpResult[]; committed: boolean } => {
    const results: OpResult[] = [];
    try {
      db.exec('BEGIN IMMEDIATE');
      for (const o of ops) {
        db.exec('SAVEPOINT op');
        try {
          results.push({ ok: true, ...apply(o) });
          db.exec('RELEASE op');
        } catch (err) {
          // Some errors (SQLITE_FULL, I/O errors) make SQLite roll back the whole transaction.
          if (!db.inTransaction) throw err;
          db.exec('ROLLBACK TO op; RELEASE op');
          results.push(failure(err));
        }
      }
      db.exec('COMMIT');
      return { results, committed: true };
    } catch (err) {
      if (db.inTransaction) {
        try {
          db.exec('ROLLBACK');
        } catch {
          // The transaction is gone either way; the next BEGIN reports a connection that is unusable.
        }
      }
      const f = failure(err);
      return { results: ops.map((_, i) => (results[i] && !results[i].ok ? results[i] : f)), committed: false };
    }
  };

  parentPort.on('message', (m: ToWorker) => {
    if (m.type === 'open') {
      try {
        open();
        parentPort.postMessage({ type: 'opened' });
      } catch (err) {
        const f = failure(err) as { code: string; message: string };
        parentPort.postMessage({ type: 'openFailed', code: f.code, message: f.message });
      }
    } else if (m.type === 'batch') {
      parentPort.postMessage({ type: 'batch', ...runBatch(m.ops) });
    } else {
      if (db?.open) db.close(); // checkpoints the WAL into the database and removes it
      parentPort.postMessage({ type: 'closed' });
    }
  });
}
