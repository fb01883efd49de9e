// The few libc calls Node does not offer (mount(2) and the new mount API, extended attributes),
// made through koffi on a worker thread: a mount can block for as long as the kernel likes, and the
// event loop must keep answering Get and List meanwhile. errno is thread-local, so it is read on the
// worker right after the call and travels back with the result.
import { Worker } from 'node:worker_threads';

/** A failed libc call, with the errno name (`ENOENT`, `EBUSY`, …) as Node's own fs errors carry it. */
export class ErrnoError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
    readonly code: string,
    what: string,
  ) {
    super(`${call} ${what}: ${code} (errno ${errno})`);
  }
}

// Constants from <linux/mount.h> and <linux/fcntl.h>.
export const MS_RDONLY = 0x1;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;
export const MNT_DETACH = 0x2;
export const UMOUNT_NOFOLLOW = 0x8;
export const OPEN_TREE_CLONE = 0x1;
export const OPEN_TREE_CLOEXEC = 0o2000000;
export const AT_FDCWD = -100;
export const AT_EMPTY_PATH = 0x1000;
export const AT_RECURSIVE = 0x8000;
export const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
export const MOUNT_ATTR_RDONLY = 0x1;
export const XATTR_CREATE = 0x1;

/** The calls the worker knows, with their argument lists as sent (strings, numbers, Buffers). */
export interface Calls {
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): number;
  umount2(target: string, flags: number): number;
  open_tree(dirfd: number, path: string, flags: number): number;
  move_mount(fromDirfd: number, fromPath: string, toDirfd: number, toPath: string, flags: number): number;
  /** mount_setattr with a struct mount_attr of attr_set/attr_clr/propagation. */
  mount_setattr(dirfd: number, path: string, flags: number, attrSet: number, attrClr: number, propagation: number): number;
  close(fd: number): number;
  lsetxattr(path: string | Buffer, name: string, value: Buffer, flags: number): number;
  /** Returns the value, or null when the attribute is absent (ENODATA). */
  lgetxattr(path: string | Buffer, name: string): Buffer | null;
  /** Attribute names of the entry itself (symlinks are not followed). */
  llistxattr(path: string | Buffer): string[];
}
export type CallName = keyof Calls;

/**
 * The worker's whole program, run from its source text (`eval`), so that it works the same from
 * dist/ and under ts-jest. It may use only `require` and what it defines itself.
 */
function workerMain(): void {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { parentPort, workerData } = require('node:worker_threads');
  const os = require('node:os');
  const koffi = require(workerData.koffi);
  const lib = koffi.load('libc.so.6');
  const MountAttr = koffi.struct('hostvol_mount_attr', { attr_set: 'uint64', attr_clr: 'uint64', propagation: 'uint64', userns_fd: 'uint64' });
  const f = {
    mount: lib.func('int mount(const char*, const char*, const char*, unsigned long, const char*)'),
    umount2: lib.func('int umount2(const char*, int)'),
    open_tree: lib.func('int open_tree(int, const char*, unsigned int)'),
    move_mount: lib.func('int move_mount(int, const char*, int, const char*, unsigned int)'),
    mount_setattr: lib.func('int mount_setattr(int, const char*, unsigned int, hostvol_mount_attr*, size_t)'),
    close: lib.func('int close(int)'),
    lsetxattr: lib.func('int lsetxattr(const char*, const char*, const void*, size_t, int)'),
    lgetxattr: lib.func('intptr_t lgetxattr(const char*, const char*, void*, size_t)'),
    llistxattr: lib.func('intptr_t llistxattr(const char*, char*, size_t)'),
  };
  const ENODATA = 61;
  const ERANGE = 34;
  // Paths may be Buffers (names that are not UTF-8): pass them NUL-terminated as raw bytes.
  // Buffers arrive here as plain Uint8Arrays (structured clone), so test for that.
  const cstr = (p: unknown) => (p instanceof Uint8Array ? Buffer.concat([p, Buffer.alloc(1)]) : p);
  const run = (call: string, args: unknown[]): { ret: unknown; errno: number } => {
    switch (call) {
      case 'mount_setattr': {
        const [dirfd, p, flags, set, clr, prop] = args as number[];
        const attr = { attr_set: set, attr_clr: clr, propagation: prop, userns_fd: 0 };
        const ret = f.mount_setattr(dirfd, p, flags, attr, koffi.sizeof(MountAttr));
        return { ret, errno: ret < 0 ? koffi.errno() : 0 };
      }
      case 'lsetxattr': {
        const [p, name, value, flags] = args as [unknown, string, Uint8Array, number];
        const buf = Buffer.from(value);
        const ret = f.lsetxattr(cstr(p), name, buf, buf.length, flags);
        return { ret, errno: ret < 0 ? koffi.errno() : 0 };
      }
      case 'lgetxattr': {
        const [p, name] = args as [unknown, string];
        for (let size = 256; ; size *= 4) {
          const buf = Buffer.alloc(size);
          const n = Number(f.lgetxattr(cstr(p), name, buf, size));
          if (n >= 0) return { ret: buf.subarray(0, n), errno: 0 };
          const e = koffi.errno();
          if (e === ENODATA) return { ret: null, errno: 0 };
          if (e !== ERANGE || size > 1 << 20) return { ret: -1, errno: e };
        }
      }
      case 'llistxattr': {
        const [p] = args;
        for (let size = 1024; ; size *= 4) {
          const buf = Buffer.alloc(size);
          const n = Number(f.llistxattr(cstr(p), buf, size));
          if (n >= 0) return { ret: buf.subarray(0, n).toString('latin1').split('\0').filter(Boolean), errno: 0 };
          const e = koffi.errno();
          if (e !== ERANGE || size > 1 << 20) return { ret: -1, errno: e };
        }
      }
      default: {
        const fn = (f as Record<string, (...a: unknown[]) => number>)[call];
        const ret = Number(fn(...args.map(cstr)));
        return { ret, errno: ret < 0 ? koffi.errno() : 0 };
      }
    }
  };
  const codes: Record<number, string> = {};
  for (const [name, n] of Object.entries(os.constants.errno as Record<string, number>)) codes[n] ??= name;
  parentPort.on('message', (m: { id: number; call: string; args: unknown[] }) => {
    try {
      const { ret, errno } = run(m.call, m.args);
      parentPort.postMessage({ id: m.id, ret, errno, code: errno ? (codes[errno] ?? `E${errno}`) : undefined });
    } catch (err) {
      parentPort.postMessage({ id: m.id, ret: -1, errno: -1, code: String((err as Error).message) });
    }
  });
}

interface Reply {
  id: number;
  ret: unknown;
  errno: number;
  code?: string;
}

let worker: Worker | undefined;
let nextId = 0;
const pending = new Map<number, { call: string; what: string; resolve: (v: unknown) => void; reject: (e: Error) => void }>();

function start(): Worker {
  const w = new Worker(`(${workerMain.toString()})()`, { eval: true, workerData: { koffi: require.resolve('koffi') } });
  w.on('message', (m: Reply) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (!pending.size) w.unref();
    if (m.errno !== 0) p.reject(new ErrnoError(p.call, m.errno, m.code ?? `E${m.errno}`, p.what));
    // Buffers arrive as plain Uint8Arrays after the structured clone.
    else p.resolve(m.ret instanceof Uint8Array ? Buffer.from(m.ret.buffer, m.ret.byteOffset, m.ret.length) : m.ret);
  });
  w.on('error', (err) => {
    for (const p of pending.values()) p.reject(err);
    pending.clear();
    worker = undefined;
  });
  w.unref();
  return w;
}

/**
 * Runs one libc call on the worker. Resolves with its result; a failure rejects with an ErrnoError
 * whose message starts with the call and `what` (a path or volume, for the operator to act on).
 */
export function libc<C extends CallName>(call: C, what: string, ...args: Parameters<Calls[C]>): Promise<ReturnType<Calls[C]>> {
  worker ??= start();
  const id = nextId++;
  worker.ref();
  return new Promise((resolve, reject) => {
    pending.set(id, { call, what, resolve: resolve as (v: unknown) => void, reject });
    worker!.postMessage({ id, call, args });
  });
}

/** Stops the worker (tests and shutdown); the next call starts a new one. */
export async function stopLibc(): Promise<void> {
  const w = worker;
  worker = undefined;
  if (w) await w.terminate();
}
