// The two worker threads of the off-loop floor (floor-offloop.ts). `host` does each host step of a
// request as one synchronous job (as hostvol's host worker does: src/host/host-worker.ts); `commit`
// owns its own SQLite connection, with the floor's pragmas, and runs one commit per job. The jobs do
// exactly the floor's syscalls and SQL (bench/floor.ts), plus the lstat of hostvol's locate step.
import * as fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { FLOOR_PRAGMAS, FLOOR_SCHEMA, floorStatements } from './floor-http';

type Jobs = Record<string, (...args: never[]) => unknown>;

// From <linux/mount.h> and <linux/fcntl.h>, as src/host/libc.ts has them.
const OPEN_TREE_CLONE = 0x1;
const OPEN_TREE_CLOEXEC = 0o2000000;
const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
const MOUNT_ATTR_RDONLY = 0x1;
const UMOUNT_NOFOLLOW = 0x8;

function hostJobs(): Jobs {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const koffi = require('koffi');
  const lib = koffi.load('libc.so.6');
  const MountAttr = koffi.struct('floor_mount_attr', { attr_set: 'uint64', attr_clr: 'uint64', propagation: 'uint64', userns_fd: 'uint64' });
  const f = {
    umount2: lib.func('int umount2(const char*, int)'),
    open_tree: lib.func('int open_tree(int, const char*, unsigned int)'),
    move_mount: lib.func('int move_mount(int, const char*, int, const char*, unsigned int)'),
    mount_setattr: lib.func('int mount_setattr(int, const char*, unsigned int, floor_mount_attr*, size_t)'),
    close: lib.func('int close(int)'),
  };
  const check = (call: string, what: string, ret: number) => {
    if (ret < 0) throw new Error(`${call} ${what}: errno ${koffi.errno()}`);
    return ret;
  };
  const fsyncPath = (p: string, mode?: number) => {
    const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      if (mode !== undefined) fs.fchmodSync(fd, mode);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  };
  return {
    locate: (dir: string) => fs.lstatSync(dir, { throwIfNoEntry: false }) !== undefined,
    makeDir: (dir: string, parent: string) => {
      fs.mkdirSync(dir);
      fsyncPath(dir, 0o755);
      fsyncPath(parent);
    },
    retire: (dir: string, gone: string, parent: string) => {
      fs.renameSync(dir, gone);
      fs.rmdirSync(gone);
      fsyncPath(parent);
    },
    bind: (source: string, target: string, readOnly: boolean) => {
      const fd = fs.openSync(source, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_DIRECTORY);
      let tree: number;
      try {
        tree = check('open_tree', source, f.open_tree(fd, '', OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
      } finally {
        fs.closeSync(fd);
      }
      try {
        if (readOnly) {
          const attr = { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
          check('mount_setattr', source, f.mount_setattr(tree, '', AT_EMPTY_PATH, attr, koffi.sizeof(MountAttr)));
        }
        fs.mkdirSync(target);
        check('move_mount', target, f.move_mount(tree, '', AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH));
      } finally {
        f.close(tree);
      }
    },
    release: (target: string) => {
      check('umount2', target, f.umount2(target, UMOUNT_NOFOLLOW));
      fs.rmdirSync(target);
    },
  };
}

function commitJobs(dbFile: string): Jobs {
  const db = new Database(dbFile);
  for (const p of FLOOR_PRAGMAS) db.pragma(p);
  db.exec(FLOOR_SCHEMA);
  const q = floorStatements(db);
  const jobs: Jobs = {};
  for (const [name, stmt] of Object.entries(q)) jobs[name] = ((...args: unknown[]) => void stmt.run(...args)) as never;
  return jobs;
}

if (parentPort) {
  const port = parentPort;
  const jobs = workerData.role === 'host' ? hostJobs() : commitJobs(workerData.db);
  port.on('message', (m: { id: number; job: string; args: unknown[] }) => {
    try {
      port.postMessage({ id: m.id, ok: true, ret: (jobs[m.job] as (...a: unknown[]) => unknown)(...m.args) });
    } catch (err) {
      port.postMessage({ id: m.id, ok: false, message: `${m.job}: ${(err as Error).message}` });
    }
  });
}

/** One worker thread and the jobs in flight on it: `run` is one hand-off there and back. */
export class JobThread {
  private next = 0;
  private readonly waiting = new Map<number, { resolve(x: unknown): void; reject(e: Error): void }>();
  constructor(private readonly worker: import('node:worker_threads').Worker) {
    worker.on('message', (m: { id: number; ok: boolean; ret?: unknown; message?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.ok) w?.resolve(m.ret);
      else w?.reject(new Error(m.message));
    });
  }

  run<T = unknown>(job: string, ...args: unknown[]): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (x: unknown) => void, reject });
      this.worker.postMessage({ id, job, args });
    });
  }
}

export const WORKER_JS = __filename;
