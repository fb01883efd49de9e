// Bind mounts: a volume's directory made visible (read-only when asked) at a path under hostvol's
// mounts directory, and their removal. Every step is a system call on the libc worker or an async
// fs call, so the event loop keeps answering while the kernel takes its time; nothing is spawned.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HostvolError } from '../errors';
import {
  AT_EMPTY_PATH, AT_FDCWD, ErrnoError, MNT_DETACH, MOUNT_ATTR_RDONLY, MOVE_MOUNT_F_EMPTY_PATH, MS_BIND, MS_RDONLY,
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

/**
 * `mkdir target` with its parents, without turning ENOSPC into ENOENT as recursive mkdir does.
 * True when it made the directory now: then nothing can be mounted on it yet.
 */
async function makeTarget(target: string): Promise<boolean> {
  const mkdir = () => fs.promises.mkdir(target, { mode: 0o755 }).then(() => true);
  const made = (err: unknown) => (codeOf(err) === 'EEXIST' ? false : failed(target, 'create the directory for', err));
  try {
    return await mkdir();
  } catch (err) {
    if (codeOf(err) !== 'ENOENT') return made(err);
    await fs.promises.mkdir(path.dirname(target), { recursive: true, mode: 0o755 }).catch((e) => failed(target, 'create the parents of', e));
    return mkdir().catch(made);
  }
}

/**
 * The new mount API, in one step as seen from outside: a detached copy of the directory's mount
 * (not recursive, like mount --bind), made read-only while still detached, then attached. Because
 * the flag is set before attaching, every copy that propagates to peers (a managed plugin's mount
 * seen by the host's dockerd) is read-only too; a remount after attaching would change ours only.
 */
async function attach(fd: number, target: string, readOnly: boolean): Promise<void> {
  const tree = await libc('open_tree', target, fd, '', OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
  try {
    if (readOnly) await libc('mount_setattr', target, tree, '', AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0, 0);
    // Without MOVE_MOUNT_T_SYMLINKS the last component is not followed: a symlink put in place of
    // the target is itself the mount point asked for, and the kernel refuses to put a directory on
    // it instead of mounting wherever it points.
    await libc('move_mount', target, tree, '', AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
  } finally {
    // Closing a tree fd that was attached does nothing to the mount; one never attached is freed.
    // Linux releases the descriptor even when close reports an error, so none may hide the real one.
    await libc('close', target, tree).catch(() => undefined);
  }
}

/**
 * mount(2) for kernels without open_tree (before 5.2). Exported so the path is tested on kernels
 * that have it. mount(2) follows symlinks, so the target is opened first (O_PATH: no read permission
 * needed; O_NOFOLLOW|O_DIRECTORY: a symlink in its place fails with ENOTDIR) and both ends are
 * reached through /proc/self/fd. A read-only bind is made read-only in a staging mount first and then
 * bound to the target: the copy takes the flag, for our mount and the peers it propagates to alike.
 */
export async function legacyBind(fd: number, target: string, readOnly: boolean): Promise<void> {
  const handle = await fs.promises.open(target, O_PATH | O_DIRECTORY | O_NOFOLLOW);
  try {
    await legacyAttach(fd, `/proc/self/fd/${handle.fd}`, target, readOnly);
  } finally {
    await handle.close();
  }
}

async function legacyAttach(fd: number, to: string, target: string, readOnly: boolean): Promise<void> {
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
 * Checks the mount now at `target` once: read-only when asked. A kernel or file system that dropped
 * the flag must not have its mount served as read-only; it is unmounted. access(W_OK) answers EROFS
 * exactly when the mount (or its file system) is read-only, at the cost of one lookup; only when it
 * cannot tell (EACCES without CAP_DAC_OVERRIDE, say) is the mount table read.
 */
async function verify(target: string, readOnly: boolean): Promise<void> {
  if (!readOnly) return;
  const refused = await fs.promises.access(target, fs.constants.W_OK).then(() => 'writable', codeOf);
  if (refused === 'EROFS') return;
  const top = refused === 'writable' ? undefined : (await readMounts()).filter((m) => m.mountPoint === target).pop();
  if (top?.options.includes('ro')) return;
  await unmountAll(target);
  throw new MountError(target, 'EROFS', `the bind mount at ${target} did not come out read-only; refusing to serve it`);
}

/** Why a mount onto `target` was refused when something other than a directory is there (the kernel says EINVAL or ENOTDIR). */
async function notADirectory(target: string): Promise<string> {
  const st = await fs.promises.lstat(target).catch(() => undefined);
  if (!st || st.isDirectory()) return '';
  return `: ${target} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}; remove it, hostvol recreates the directory`;
}

export const systemMounter: Mounter = {
  async bind(fd, target, readOnly) {
    // A leftover mount (crash, failed release) would be stacked over; clear it first. A directory
    // made just now has none, which spares the call in the usual case.
    if (!(await makeTarget(target))) await unmountAll(target);
    try {
      await attach(fd, target, readOnly).catch((err) => {
        if (codeOf(err) !== 'ENOSYS') throw err;
        return legacyBind(fd, target, readOnly);
      });
    } catch (err) {
      failed(target, 'make', err, await notADirectory(target));
    }
    await verify(target, readOnly);
  },

  async release(target) {
    // rmdir answers EBUSY while something is still mounted there (stacked mounts): unmount again.
    // So the usual release is one umount2 and one rmdir, with no extra call to find out it is done.
    for (;;) {
      const unmounted = await unmountTop(target);
      const code = await fs.promises.rmdir(target).then(() => 'removed', codeOf);
      if (code === 'removed' || code === 'ENOENT') return;
      if (code !== 'EBUSY' || !unmounted) failed(target, 'remove the directory of', Object.assign(new Error(code), { code }));
    }
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
