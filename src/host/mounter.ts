// Bind mounts: a volume's directory made visible (read-only when asked) at a path under hostvol's
// mounts directory, and their removal. Every step is a system call on the libc worker or an async
// fs call, so the event loop keeps answering while the kernel takes its time; nothing is spawned.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HostvolError } from '../errors';
import {
  AT_EMPTY_PATH, ErrnoError, MNT_DETACH, MOUNT_ATTR_RDONLY, MOVE_MOUNT_F_EMPTY_PATH, MS_BIND, MS_RDONLY,
  MS_REMOUNT, OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE, UMOUNT_NOFOLLOW, libc,
} from './libc';
import { readMounts } from './mountinfo';
import { isInside } from './paths';

export interface Mounter {
  /**
   * Binds the directory open as `fd` (reached without following symlinks by the caller) onto
   * `target`, read-only when asked. `target` is created (0755) if missing; a leftover mount there
   * is removed first, so mounts are never stacked. Errors name the target and keep the errno code.
   */
  bind(fd: number, target: string, readOnly: boolean): Promise<void>;
  /** Unmounts `target` while it is a mount point (detaching it when busy) and removes the then-empty directory; a missing target is fine. */
  release(target: string): Promise<void>;
  /** Mount points strictly below `dir`, deepest first. */
  mountsUnder(dir: string): Promise<string[]>;
  isMountPoint(target: string): Promise<boolean>;
}

/** A bind or release that failed: names the mount point and keeps the errno name (`code`). */
export class MountError extends HostvolError {
  override name = 'MountError';
  constructor(
    readonly target: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

// From <linux/mount.h> and <fcntl.h>; libc.ts has the rest.
const MOVE_MOUNT_T_EMPTY_PATH = 0x40;
const O_PATH = 0o10000000;
const { O_DIRECTORY, O_NOFOLLOW } = fs.constants;

const codeOf = (err: unknown): string => (err as { code?: string }).code ?? 'EIO';

/** Rethrows a failed step as a MountError that says which mount point and what to do about it. */
function failed(target: string, step: string, err: unknown, hint = ''): never {
  if (err instanceof MountError) throw err;
  const code = codeOf(err);
  const why = err instanceof ErrnoError ? `${err.call}: ${code}` : `${code}`;
  throw new MountError(target, code, `cannot ${step} the bind mount at ${target} (${why})${hint}`);
}

/**
 * One umount2 of whatever is mounted on top at `target`; false when nothing is (EINVAL: not a
 * mount point, ENOENT: no such path). UMOUNT_NOFOLLOW: a symlink planted at `target` must not lead
 * the unmount elsewhere. A busy mount (a process has its cwd inside) is detached: it disappears
 * from the tree now and the kernel frees it once idle, which is all a release can promise.
 */
async function unmountTop(target: string): Promise<boolean> {
  try {
    await libc('umount2', target, target, UMOUNT_NOFOLLOW);
    return true;
  } catch (err) {
    const code = codeOf(err);
    if (code === 'EINVAL' || code === 'ENOENT') return false;
    if (code !== 'EBUSY') failed(target, 'unmount', err);
  }
  await libc('umount2', target, target, UMOUNT_NOFOLLOW | MNT_DETACH).catch((err) => failed(target, 'detach', err));
  return true;
}

/** Unmounts everything stacked at `target`; every success removes one mount, so this ends. */
async function unmountAll(target: string): Promise<void> {
  while (await unmountTop(target));
}

/** `mkdir target` with its parents, without turning ENOSPC into ENOENT as recursive mkdir does. */
async function makeTarget(target: string): Promise<void> {
  try {
    await fs.promises.mkdir(target, { mode: 0o755 });
  } catch (err) {
    const code = codeOf(err);
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT') failed(target, 'create the directory for', err);
    await fs.promises.mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
    await fs.promises.mkdir(target, { mode: 0o755 }).catch((e) => codeOf(e) === 'EEXIST' || failed(target, 'create the directory for', e));
  }
}

/**
 * Opens `target` itself (O_PATH: no read permission needed) for move_mount to attach to. A symlink
 * put in its place is opened as itself (O_NOFOLLOW) and then refused by O_DIRECTORY with ENOTDIR,
 * like a file: a mount made through the path would have landed wherever the link points.
 */
async function openTarget(target: string): Promise<fs.promises.FileHandle> {
  try {
    return await fs.promises.open(target, O_PATH | O_DIRECTORY | O_NOFOLLOW);
  } catch (err) {
    const code = codeOf(err);
    const hint = code === 'ELOOP' || code === 'ENOTDIR' ? `: ${target} is not a directory (a symlink or file took its place); remove it` : '';
    failed(target, 'open the mount point of', err, hint);
  }
}

/**
 * The new mount API, in one step as seen from outside: a detached copy of the directory's mount
 * (not recursive, like mount --bind), made read-only while still detached, then attached. Because
 * the flag is set before attaching, every copy that propagates to peers (a managed plugin's mount
 * seen by the host's dockerd) is read-only too; a remount after attaching would change ours only.
 */
async function attach(fd: number, targetFd: number, target: string, readOnly: boolean): Promise<void> {
  const tree = await libc('open_tree', target, fd, '', OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
  try {
    if (readOnly) await libc('mount_setattr', target, tree, '', AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0, 0);
    await libc('move_mount', target, tree, '', targetFd, '', MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
  } finally {
    // Closing a tree fd that was attached does nothing to the mount; one never attached is freed.
    await libc('close', target, tree);
  }
}

/**
 * mount(2) for kernels without open_tree (before 5.2). Exported so the path is tested on kernels
 * that have it. The directory fd and the target fd are reached through /proc/self/fd, so no path is
 * looked up again. A read-only bind is made read-only in a staging mount first and then bound to the
 * target: the copy takes the read-only flag, for our mount and the peers it propagates to alike.
 */
export async function legacyBind(fd: number, targetFd: number, target: string, readOnly: boolean): Promise<void> {
  const to = `/proc/self/fd/${targetFd}`;
  if (!readOnly) {
    await libc('mount', target, `/proc/self/fd/${fd}`, to, null, MS_BIND, null);
    return;
  }
  // Next to the target, where start-up recovery removes it if a SIGKILL leaves it mounted.
  const staging = await fs.promises.mkdtemp(path.join(path.dirname(target), '.staging-'));
  try {
    await libc('mount', staging, `/proc/self/fd/${fd}`, staging, null, MS_BIND, null);
    await libc('mount', staging, null, staging, null, MS_REMOUNT | MS_BIND | MS_RDONLY, null);
    await libc('mount', target, staging, to, null, MS_BIND, null);
  } finally {
    await unmountAll(staging);
    await fs.promises.rmdir(staging);
  }
}

/**
 * Checks the one mount now at `target` once: read-only when asked. A source on a file system that
 * ignores the flag, or a kernel that dropped it, must not be served as read-only; it is unmounted.
 */
async function verify(target: string, readOnly: boolean): Promise<void> {
  if (!readOnly) return;
  const top = (await readMounts()).filter((m) => m.mountPoint === target).pop();
  if (top?.options.includes('ro')) return;
  await unmountAll(target);
  throw new MountError(target, 'EROFS', `the bind mount at ${target} did not come out read-only; refusing to serve it`);
}

export const systemMounter: Mounter = {
  async bind(fd, target, readOnly) {
    // A leftover mount (crash, failed release) would be stacked over; clear it first.
    await unmountAll(target);
    await makeTarget(target);
    const handle = await openTarget(target);
    try {
      await attach(fd, handle.fd, target, readOnly).catch((err) => {
        if (codeOf(err) !== 'ENOSYS') throw err;
        return legacyBind(fd, handle.fd, target, readOnly);
      });
    } catch (err) {
      failed(target, 'make', err);
    } finally {
      await handle.close();
    }
    await verify(target, readOnly);
  },

  async release(target) {
    await unmountAll(target);
    await fs.promises.rmdir(target).catch((err) => codeOf(err) === 'ENOENT' || failed(target, 'remove the directory of', err));
  },

  async mountsUnder(dir) {
    // A set: stacked mounts (a crash between two binds) would list one mount point twice.
    const points = new Set((await readMounts()).map((m) => m.mountPoint).filter((m) => m !== dir && isInside(m, dir)));
    return [...points].sort((a, b) => b.length - a.length);
  },

  async isMountPoint(target) {
    return (await readMounts()).some((m) => m.mountPoint === target);
  },
};
