// The worker part that loads libc through koffi: the calls Node does not offer (mount(2), the new
// mount API, extended attributes, flock, renameat2), each returning its result and the errno read on
// the same thread right after the call (errno is thread-local). Jobs use them through `h.call`;
// `libc` runs one alone.
import type { WorkerHost } from './host-worker';

export function libcPart(h: WorkerHost): void {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { workerData } = require('node:worker_threads');
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
    flock: lib.func('int flock(int, int)'),
    renameat2: lib.func('int renameat2(int, const char*, int, const char*, unsigned int)'),
  };
  const ENODATA = 61;
  const ERANGE = 34;
  const codes: Record<number, string> = {};
  for (const [name, n] of Object.entries(os.constants.errno as Record<string, number>)) codes[n] ??= name;
  const codeOf = (errno: number) => (errno ? (codes[errno] ?? `E${errno}`) : '');
  // Paths may be Buffers (names that are not UTF-8): pass them NUL-terminated as raw bytes.
  const cstr = (p: unknown) => (p instanceof Uint8Array ? Buffer.concat([p, Buffer.alloc(1)]) : p);
  const result = (ret: unknown, errno: number) => ({ ret, errno, code: codeOf(errno) });
  const run = (call: string, args: unknown[]): { ret: unknown; errno: number; code: string } => {
    switch (call) {
      case 'mount_setattr': {
        const [dirfd, p, flags, set, clr, prop] = args as number[];
        const attr = { attr_set: set, attr_clr: clr, propagation: prop, userns_fd: 0 };
        const ret = f.mount_setattr(dirfd, p, flags, attr, koffi.sizeof(MountAttr));
        return result(ret, ret < 0 ? koffi.errno() : 0);
      }
      case 'lsetxattr': {
        const [p, name, value, flags] = args as [unknown, string, Uint8Array, number];
        const buf = Buffer.from(value);
        const ret = f.lsetxattr(cstr(p), name, buf, buf.length, flags);
        return result(ret, ret < 0 ? koffi.errno() : 0);
      }
      case 'lgetxattr': {
        const [p, name] = args as [unknown, string];
        for (let size = 256; ; size *= 4) {
          const buf = Buffer.alloc(size);
          const n = Number(f.lgetxattr(cstr(p), name, buf, size));
          if (n >= 0) return result(buf.subarray(0, n), 0);
          const e = koffi.errno();
          if (e === ENODATA) return result(null, 0);
          if (e !== ERANGE || size > 1 << 20) return result(-1, e);
        }
      }
      case 'llistxattr': {
        const [p] = args;
        for (let size = 1024; ; size *= 4) {
          const buf = Buffer.alloc(size);
          const n = Number(f.llistxattr(cstr(p), buf, size));
          if (n >= 0) return result(buf.subarray(0, n).toString('latin1').split('\0').filter(Boolean), 0);
          const e = koffi.errno();
          if (e !== ERANGE || size > 1 << 20) return result(-1, e);
        }
      }
      default: {
        const fn = (f as Record<string, (...a: unknown[]) => number>)[call];
        const ret = Number(fn(...args.map(cstr)));
        return result(ret, ret < 0 ? koffi.errno() : 0);
      }
    }
  };
  h.call = (name, ...args) => run(name, args) as { ret: number; errno: number; code: string };
  h.jobs.libc = ((call: string, args: unknown[]) => {
    const r = run(call, args);
    if (r.errno) throw h.failure({ code: r.code, errno: r.errno });
    return r.ret;
  }) as never;
}
