// What both floors share (bench/floor.ts, bench/floor-offloop.ts): the volumes loaded from the
// store at start, the read routes (Get, List, Path: a Map lookup or walk, no I/O) and the bare
// node:http server on a Unix socket. Neither floor validates, logs or counts anything.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type Database from 'better-sqlite3';

export interface Vol {
  name: string;
  path: string;
  createdAt: string;
  options: { readOnly: boolean };
  createdBy: string;
  leases: Set<string>;
}
export type Body = { Name?: string; ID?: string; Opts?: Record<string, string> | null };
export type Routes = Record<string, (b: Body) => unknown>;

export const FLOOR_PRAGMAS = ['locking_mode = EXCLUSIVE', 'journal_mode = WAL', 'synchronous = FULL'];
export const FLOOR_SCHEMA =
  'CREATE TABLE IF NOT EXISTS floor_volumes (name TEXT PRIMARY KEY, path TEXT NOT NULL, state TEXT NOT NULL) WITHOUT ROWID;' +
  'CREATE TABLE IF NOT EXISTS floor_leases (volume TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (volume, id)) WITHOUT ROWID;';

/** hostvol's volumes as the dataset wrote them (the floors answer Get and List from this Map). */
/** The floor's writes, the same statements in both floors (the off-loop one runs them on a worker). */
export function floorStatements(db: Database.Database) {
  return {
    insert: db.prepare("INSERT OR REPLACE INTO floor_volumes (name, path, state) VALUES (?, ?, 'creating')"),
    mark: db.prepare('UPDATE floor_volumes SET state = ? WHERE name = ?'),
    del: db.prepare('DELETE FROM floor_volumes WHERE name = ?'),
    lease: db.prepare('INSERT OR REPLACE INTO floor_leases (volume, id) VALUES (?, ?)'),
    unlease: db.prepare('DELETE FROM floor_leases WHERE volume = ? AND id = ?'),
  };
}

export function loadVolumes(db: Database.Database): Map<string, Vol> {
  const volumes = new Map<string, Vol>();
  const hasVolumes = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'volumes'").get();
  if (!hasVolumes) return volumes;
  const rows = db.prepare('SELECT name, path, options, created_by AS createdBy, created_at AS createdAt FROM volumes').all() as {
    name: string; path: string; options: string; createdBy: string; createdAt: string;
  }[];
  for (const r of rows) {
    // Explicit fields: one hidden class for every Vol.
    volumes.set(r.name, { name: r.name, path: r.path, createdAt: r.createdAt, options: JSON.parse(r.options), createdBy: r.createdBy, leases: new Set() });
  }
  return volumes;
}

export const finder = (volumes: Map<string, Vol>) => (name: string | undefined): Vol => {
  const v = volumes.get(name ?? '');
  if (!v) throw new Error(`volume "${name}" does not exist in the floor`);
  return v;
};

export function readRoutes(volumes: Map<string, Vol>): Routes {
  const find = finder(volumes);
  return {
    '/Plugin.Activate': () => ({ Implements: ['VolumeDriver'] }),
    '/VolumeDriver.Capabilities': () => ({ Capabilities: { Scope: 'local' } }),
    // Legacy Get/List/Path show the data directory; only Mount returns the bind target.
    '/VolumeDriver.Path': (b) => ({ Mountpoint: find(b.Name).path }),
    '/VolumeDriver.Get': (b) => {
      const v = find(b.Name);
      return {
        Volume: {
          Name: v.name,
          Mountpoint: v.path,
          CreatedAt: v.createdAt,
          Status: {
            path: v.path, options: v.options, mounts: v.leases.size, readOnly: v.options.readOnly, label: '',
            createdBy: v.createdBy, onRemove: v.createdBy === 'hostvol' ? 'delete' : 'keep',
          },
        },
      };
    },
    '/VolumeDriver.List': () => {
      const out = [];
      for (const v of volumes.values()) out.push({ Name: v.name, Mountpoint: v.path });
      return { Volumes: out };
    },
  };
}

/** Serves `routes` on `socket` until SIGTERM, then runs `close` and exits. */
export function serve(socket: string, mountsDir: string, routes: Routes, close: () => void): void {
  const answer = (res: http.ServerResponse, reply: unknown) => {
    // One Buffer, written once: a string body costs Node an extra flatten and copy for large replies.
    const body = Buffer.from(JSON.stringify(reply));
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length });
    res.end(body);
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const fail = (err: unknown) => answer(res, { Err: (err as Error).message });
      try {
        const text = chunks.length ? Buffer.concat(chunks).toString('utf8') : '';
        const body = (text.trim() ? JSON.parse(text) : {}) as Body;
        const route = routes[req.url ?? ''];
        const reply = route ? route(body ?? {}) : { Err: `unknown endpoint ${req.url}` };
        if (reply instanceof Promise) reply.then((r) => answer(res, r), fail);
        else answer(res, reply);
      } catch (err) {
        fail(err);
      }
    });
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  fs.rmSync(socket, { force: true });
  fs.mkdirSync(mountsDir, { recursive: true });
  server.listen(socket);
  process.once('SIGTERM', () => {
    server.close(() => {
      close();
      process.exit(0);
    });
    server.closeAllConnections();
  });
}

