// The floor: the least a volume plugin can do over HTTP. Bare node:http on a Unix socket, the body
// read and JSON.parse'd, the reply built from a Map and JSON.stringify'd, nothing else (no schema
// check, no store writes, no logging). Replies have exactly the shape, and so the size, of hostvol's;
// run.ts checks the byte counts. It loads the same SQLite records hostvol does, so its start-up is
// the floor of hostvol's too.
//   node floor.js <socket> <db file or -> <data root> <mounts dir>
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import Database from 'better-sqlite3';

interface Vol {
  name: string;
  path: string;
  createdAt: string;
  options: { readOnly: boolean };
  createdBy: string;
  mounts: number;
}

const [socket, dbFile, dataRoot, mountsDir] = process.argv.slice(2);
const volumes = new Map<string, Vol>();

if (dbFile && dbFile !== '-') {
  const db = new Database(dbFile);
  const rows = db
    .prepare('SELECT name, path, options, created_by AS createdBy, created_at AS createdAt FROM volumes')
    .all() as { name: string; path: string; options: string; createdBy: string; createdAt: string }[];
  for (const r of rows) {
    // Explicit fields: one hidden class for every Vol (a spread of the row objects made List 2× slower).
    const v: Vol = { name: r.name, path: r.path, createdAt: r.createdAt, options: JSON.parse(r.options), createdBy: r.createdBy, mounts: 0 };
    volumes.set(r.name, v);
  }
  db.close();
}

const mountpoint = (v: Vol) => (v.options.readOnly ? path.join(mountsDir, v.name) : v.path);

type Body = { Name?: string; ID?: string; Opts?: Record<string, string> | null };
const routes: Record<string, (b: Body) => unknown> = {
  '/Plugin.Activate': () => ({ Implements: ['VolumeDriver'] }),
  '/VolumeDriver.Capabilities': () => ({ Capabilities: { Scope: 'local' } }),
  '/VolumeDriver.Create': (b) => {
    const name = b.Name!;
    if (!volumes.has(name)) {
      volumes.set(name, {
        name,
        path: path.join(dataRoot, name),
        createdAt: new Date().toISOString(),
        options: { readOnly: b.Opts?.ro !== undefined },
        createdBy: 'hostvol',
        mounts: 0,
      });
    }
    return {};
  },
  '/VolumeDriver.Remove': (b) => (volumes.delete(b.Name!), {}),
  '/VolumeDriver.Mount': (b) => {
    const v = find(b.Name);
    v.mounts++;
    return { Mountpoint: mountpoint(v) };
  },
  '/VolumeDriver.Unmount': (b) => (find(b.Name).mounts--, {}),
  '/VolumeDriver.Path': (b) => ({ Mountpoint: mountpoint(find(b.Name)) }),
  '/VolumeDriver.Get': (b) => {
    const v = find(b.Name);
    return {
      Volume: {
        Name: v.name,
        Mountpoint: mountpoint(v),
        CreatedAt: v.createdAt,
        Status: {
          path: v.path, options: v.options, mounts: v.mounts, readOnly: v.options.readOnly, label: '',
          createdBy: v.createdBy, onRemove: v.createdBy === 'hostvol' ? 'delete' : 'keep',
        },
      },
    };
  },
  '/VolumeDriver.List': () => {
    const out = [];
    for (const v of volumes.values()) out.push({ Name: v.name, Mountpoint: mountpoint(v) });
    return { Volumes: out };
  },
};

function find(name: string | undefined): Vol {
  const v = volumes.get(name ?? '');
  if (!v) throw new Error(`volume "${name}" does not exist in hostvol`);
  return v;
}

function answer(res: http.ServerResponse, reply: unknown): void {
  // One Buffer, written once: for large replies (List) a string body costs Node an extra flatten and copy.
  const body = Buffer.from(JSON.stringify(reply));
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    try {
      const text = chunks.length ? Buffer.concat(chunks).toString('utf8') : '';
      const body = (text.trim() ? JSON.parse(text) : {}) as Body;
      const route = routes[req.url ?? ''];
      answer(res, route ? route(body ?? {}) : { Err: `unknown endpoint ${req.url}` });
    } catch (err) {
      answer(res, { Err: (err as Error).message });
    }
  });
});
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
try {
  fs.unlinkSync(socket);
} catch {
  // absent
}
server.listen(socket);
process.once('SIGTERM', () => server.close(() => process.exit(0)).closeAllConnections());
