// The off-loop floor: the floor's work (bench/floor.ts: same syscalls, fsyncs, SQL and pragmas), with
// each step that hostvol runs on a worker thread handed to a worker thread in hostvol's order: host
// steps to one thread, SQLite commits to another with its own connection. What it measures beyond the
// floor is the cost of those hand-offs, and nothing else (no framework, validation, metrics or logs).
//   node floor-offloop.js <socket> <db file> <data root> <mounts dir>
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { finder, loadVolumes, readRoutes, serve, type Routes, type Vol } from './floor-http';
import { JobThread, WORKER_JS } from './floor-offloop-worker';

/** What each request does, in order: → host thread, ⇒ commit thread, ∥ side by side. The report quotes it. */
export const OFFLOOP_WORK: Record<string, string> = {
  Create: '→ locate (lstat), ⇒ INSERT state=creating, → mkdir + fchmod + fsync dir + fsync parent, ⇒ UPDATE state=ready: 4 hand-offs in a row',
  Remove: '⇒ UPDATE state=removing, → rename to a trash name + rmdir + fsync parent, ⇒ DELETE: 3 hand-offs in a row',
  Mount: '⇒ INSERT lease ∥ → bind (open, open_tree, close, mount_setattr RDONLY if ro, mkdir target, move_mount, close)',
  Unmount: '⇒ DELETE lease ∥ → release (umount2 UMOUNT_NOFOLLOW, rmdir target)',
};
/** Hand-offs one after another in each pair, counted from OFFLOOP_WORK's order. */
export const OFFLOOP_SERIAL_HANDOFFS = { createRemove: 7, mountUnmount: 2 };

function main(): void {
  const [socket, dbFile, dataRoot, mountsDir] = process.argv.slice(2);
  // Read once here, then closed: the commit thread's connection takes the file's exclusive lock.
  const db = new Database(dbFile, { readonly: true });
  const volumes = loadVolumes(db);
  db.close();
  const host = new JobThread(new Worker(WORKER_JS, { workerData: { role: 'host' } }));
  const commit = new JobThread(new Worker(WORKER_JS, { workerData: { role: 'commit', db: dbFile } }));
  const find = finder(volumes);
  const target = (v: Vol) => path.join(mountsDir, v.name);
  let trash = 0;

  const routes: Routes = {
    ...readRoutes(volumes),
    '/VolumeDriver.Create': async (b) => {
      const name = b.Name!;
      if (volumes.has(name)) return {};
      const dir = path.join(dataRoot, name);
      await host.run('locate', dir);
      await commit.run('insert', name, dir);
      await host.run('makeDir', dir, dataRoot);
      await commit.run('mark', 'ready', name);
      const opts = { readOnly: b.Opts?.ro !== undefined };
      volumes.set(name, { name, path: dir, createdAt: new Date().toISOString(), options: opts, createdBy: 'hostvol', leases: new Set() });
      return {};
    },
    '/VolumeDriver.Remove': async (b) => {
      const v = find(b.Name);
      await commit.run('mark', 'removing', v.name);
      await host.run('retire', v.path, path.join(dataRoot, `.floor-trash-${process.pid}-${trash++}`), dataRoot);
      await commit.run('del', v.name);
      volumes.delete(v.name);
      return {};
    },
    // As in the floor, leases are counted in memory; the Mount figures run at c=1, one volume each.
    '/VolumeDriver.Mount': async (b) => {
      const v = find(b.Name);
      const first = v.leases.size === 0;
      await Promise.all([commit.run('lease', v.name, b.ID!), first ? host.run('bind', v.path, target(v), v.options.readOnly) : undefined]);
      v.leases.add(b.ID!);
      return { Mountpoint: target(v) };
    },
    '/VolumeDriver.Unmount': async (b) => {
      const v = find(b.Name);
      v.leases.delete(b.ID!);
      await Promise.all([commit.run('unlease', v.name, b.ID!), v.leases.size === 0 ? host.run('release', target(v)) : undefined]);
      return {};
    },
  };
  serve(socket, mountsDir, routes, () => undefined);
}

if (require.main === module) main();
