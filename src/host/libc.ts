// The few libc calls Node does not offer (mount(2) and the new mount API, extended attributes, flock,
// renameat2), made through koffi on a host worker thread (libc-part.ts): a mount can block for as
// long as the kernel likes, and the event loop must keep answering Get and List meanwhile. errno is
// thread-local, so it is read on the worker right after the call and travels back with the result.
import { JobFailure, runJob, stopWorkers } from './host-worker';

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
export const RENAME_EXCHANGE = 0x2;
// <sys/file.h>
export const LOCK_EX = 2;
export const LOCK_NB = 4;

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
  /** flock(2) on an fd of this process: advisory, held until that fd is closed or the process dies. */
  flock(fd: number, op: number): number;
  /** renameat2(2): with RENAME_EXCHANGE, swaps two names atomically. */
  renameat2(oldDirfd: number, oldName: string | Buffer, newDirfd: number, newName: string | Buffer, flags: number): number;
}
export type CallName = keyof Calls;

/**
 * Runs one libc call on a host worker. Resolves with its result; a failure rejects with an ErrnoError
 * whose message starts with the call and `what` (a path or volume, for the operator to act on).
 */
export async function libc<C extends CallName>(call: C, what: string, ...args: Parameters<Calls[C]>): Promise<ReturnType<Calls[C]>> {
  try {
    const ret = await runJob<unknown>('libc', call, args);
    // Buffers arrive as plain Uint8Arrays after the structured clone.
    return (ret instanceof Uint8Array ? Buffer.from(ret.buffer, ret.byteOffset, ret.length) : ret) as ReturnType<Calls[C]>;
  } catch (err) {
    if (err instanceof JobFailure) throw new ErrnoError(call, Number(err.fields.errno), err.code, what);
    throw err;
  }
}

/** Stops the host workers (tests and shutdown); the next call starts new ones. */
export const stopLibc = stopWorkers;
