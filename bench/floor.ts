// The floor: the least a volume plugin can do over HTTP while doing the same durable work per request
// as hostvol. Bare node:http on a Unix socket, the body JSON.parse'd, replies JSON.stringify'd, no
// schema check, no logging; replies have the shape, and so the size, of hostvol's (run.ts checks).
// (The HTTP server and the read routes are in floor-http.ts, shared with floor-offloop.ts.)
// Its naive design: every SQLite write and disk step is synchronous, on the event loop; only the libc
// calls of Mount/Unmount go through hostvol's libc.js, one host-worker round trip per call (FLOOR_WORK
// below says exactly what each request does; report.ts prints that list, so keep them in step).
//   node floor.js <socket> <db file> <data root> <mounts dir> <hostvol's dist/host/libc.js>
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { FLOOR_PRAGMAS, FLOOR_SCHEMA, finder, floorStatements, loadVolumes, readRoutes, serve, type Routes, type Vol } from './floor-http';

export { FLOOR_PRAGMAS };

/** What each request does, in order; the report quotes this list. */
export const FLOOR_WORK: Record<string, string> = {
  Create: 'INSERT state=creating (commit), mkdir, open O_DIRECTORY + fchmod + fsync dir + close, fsync parent, UPDATE state=ready (commit)',
  Remove: 'UPDATE state=removing (commit), rename to a trash name, rmdir, fsync parent, DELETE (commit)',
  Mount: 'open O_RDONLY|O_NOFOLLOW|O_DIRECTORY, open_tree(CLONE), close, mount_setattr(RDONLY; ro only), mkdir target, move_mount, close, INSERT lease (commit)',
  Unmount: 'umount2(UMOUNT_NOFOLLOW), rmdir target, DELETE lease (commit)',
  'Get, List': 'a Map lookup / walk, no I/O',
};
type Libc = typeof import('../src/host/libc');

function main(): void {
  const [socket, dbFile, dataRoot, mountsDir, libcJs] = process.argv.slice(2);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lc = require(libcJs) as Libc;
  const db = new Database(dbFile);
  for (const p of FLOOR_PRAGMAS) db.pragma(p);
  const volumes = loadVolumes(db);
  db.exec(FLOOR_SCHEMA);
  const q = floorStatements(db);
  const fsyncPath = (p: string, flags = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY, mode?: number) => {
    const fd = fs.openSync(p, flags);
    try {
      if (mode !== undefined) fs.fchmodSync(fd, mode);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  };
  const find = finder(volumes);
  const target = (v: Vol) => path.join(mountsDir, v.name);
  let trash = 0;

  const routes: Routes = {
    ...readRoutes(volumes),
    '/VolumeDriver.Create': (b) => {
      const name = b.Name!;
      if (volumes.has(name)) return {};
      const dir = path.join(dataRoot, name);
      q.insert.run(name, dir);
      fs.mkdirSync(dir);
      fsyncPath(dir, undefined, 0o755);
      fsyncPath(dataRoot);
      q.mark.run('ready', name);
      const opts = { readOnly: b.Opts?.ro !== undefined };
      volumes.set(name, { name, path: dir, createdAt: new Date().toISOString(), options: opts, createdBy: 'hostvol', leases: new Set() });
      return {};
    },
    '/VolumeDriver.Remove': (b) => {
      const v = find(b.Name);
      q.mark.run('removing', v.name);
      const gone = path.join(dataRoot, `.floor-trash-${process.pid}-${trash++}`);
      fs.renameSync(v.path, gone);
      fs.rmdirSync(gone);
      fsyncPath(dataRoot);
      q.del.run(v.name);
      volumes.delete(v.name);
      return {};
    },
    // Leases are counted in memory before and after the awaits: two first Mounts of one volume at once
    // would both bind. The Mount figures run at c=1, one volume each, so that never happens here.
    '/VolumeDriver.Mount': async (b) => {
      const v = find(b.Name);
      if (v.leases.size === 0) {
        const fd = fs.openSync(v.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_DIRECTORY);
        let tree: number;
        try {
          tree = await lc.libc('open_tree', v.path, fd, '', lc.OPEN_TREE_CLONE | lc.OPEN_TREE_CLOEXEC | lc.AT_EMPTY_PATH);
        } finally {
          fs.closeSync(fd);
        }
        try {
          if (v.options.readOnly) await lc.libc('mount_setattr', v.path, tree, '', lc.AT_EMPTY_PATH, lc.MOUNT_ATTR_RDONLY, 0, 0);
          fs.mkdirSync(target(v));
          await lc.libc('move_mount', target(v), tree, '', lc.AT_FDCWD, target(v), lc.MOVE_MOUNT_F_EMPTY_PATH);
        } finally {
          await lc.libc('close', v.path, tree);
        }
      }
      v.leases.add(b.ID!);
      q.lease.run(v.name, b.ID!);
      return { Mountpoint: target(v) };
    },
    '/VolumeDriver.Unmount': async (b) => {
      const v = find(b.Name);
      v.leases.delete(b.ID!);
      if (v.leases.size === 0) {
        await lc.libc('umount2', target(v), target(v), lc.UMOUNT_NOFOLLOW);
        fs.rmdirSync(target(v));
      }
      q.unlease.run(v.name, b.ID!);
      return {};
    },
  };
  serve(socket, mountsDir, routes, () => db.close());
}

if (require.main === module) main();
