// Reads hostvol's SQLite store the way a person would after a crash: from a copy of the files, so
// the copy can be checked (integrity, rows) without touching the state the next start recovers.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';

export interface StoreCopy {
  integrity: string;
  volumes: { name: string; path: string; state: string; createdBy: string; made: string | null; options: string }[];
  leases: { volume: string; id: string; count: number; bootId: string }[];
}

export function readStoreCopy(stateDir: string): StoreCopy {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hostvol-rel-db-'));
  try {
    for (const f of ['hostvol.db', 'hostvol.db-wal', 'hostvol.db-journal']) {
      const src = path.join(stateDir, f);
      if (fs.existsSync(src)) fs.copyFileSync(src, path.join(tmp, f));
    }
    const db = new Database(path.join(tmp, 'hostvol.db'), { fileMustExist: true });
    try {
      const integrity = (db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check).join('; ');
      const volumes = db.prepare('SELECT name, path, state, created_by AS createdBy, made, options FROM volumes').all() as StoreCopy['volumes'];
      const leases = db.prepare('SELECT volume, id, count, boot_id AS bootId FROM leases').all() as StoreCopy['leases'];
      return { integrity, volumes, leases };
    } finally {
      db.close();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
