// Bind mounts: a volume's directory made visible (read-only when asked) at a path under hostvol's
// mounts directory, and their removal. A bind and a release each run as one job on a host worker
// (mount-jobs.ts), so the event loop keeps answering while the kernel takes its time, and a request
// pays one thread hand-off for the whole of it; nothing is spawned.
import { HostvolError } from '../errors';
import { JobFailure, runJob } from './host-worker';
import type { MountFailure } from './mount-jobs';
import { readMounts } from './mountinfo';
import { walkJob } from './tree';
import { isInside } from './paths';

export interface Mounter {
  /**
   * Binds the directory open as `fd` (reached without following symlinks by the caller) onto
   * `target`, read-only when asked. `target` is created (0755) if missing; a leftover mount there
   * is removed first, so mounts are never stacked. Errors name the target and keep the errno code.
   */
  bind(fd: number, target: string, readOnly: boolean): Promise<void>;
  /**
   * bind of the directory `rel` beneath the trusted `root`, reached by openBeneath's no-follow walk,
   * all in one job. A failure of the walk is a TreeError as from openBeneath.
   */
  bindBeneath(root: string, rel: string, target: string, readOnly: boolean): Promise<void>;
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

/** A failed bind or release job worded for the operator: which mount point, which step, the errno. */
function failed(target: string, err: unknown): never {
  if (!(err instanceof JobFailure)) throw err;
  const f = err.fields as unknown as MountFailure;
  if (f.step === 'verify') throw new MountError(target, 'EROFS', `the bind mount at ${target} did not come out read-only; refusing to serve it`);
  const why = f.call ? `${f.call}: ${f.code}` : f.code;
  const hint = f.found ? `: ${target} is ${f.found}; remove it, hostvol recreates the directory` : '';
  throw new MountError(target, f.code, `cannot ${f.step} the bind mount at ${target} (${why})${hint}`);
}

/**
 * One job (mount-jobs.ts bind): a leftover mount at `target` is cleared (a directory made just now
 * has none, which spares the call in the usual case), then the bind is made with the new mount API:
 * a detached copy of the directory's mount (not recursive, like mount --bind), made read-only while
 * still detached, then attached. Because the flag is set before attaching, every copy that
 * propagates to peers (a managed plugin's mount seen by the host's dockerd) is read-only too; a
 * remount after attaching would change ours only. Without MOVE_MOUNT_T_SYMLINKS the last component
 * is not followed: a symlink put in place of the target is itself the mount point asked for, and the
 * kernel refuses to put a directory on it. Kernels without open_tree (before 5.2) get mount(2)
 * (`legacy`). A read-only bind is then checked once: access(W_OK) answers EROFS exactly when the
 * mount (or its file system) is read-only; only when it cannot tell (EACCES without
 * CAP_DAC_OVERRIDE, say) is the mount table read here. One that came out writable is unmounted.
 */
async function bindJob(fd: number, target: string, readOnly: boolean, legacy: boolean): Promise<void> {
  await checked(target, await runJob<'ok' | 'check'>('bind', fd, target, readOnly, legacy).catch((err) => failed(target, err)));
}

/** The read-only check the job could not decide (EACCES): the mount table says. */
async function checked(target: string, verdict: 'ok' | 'check'): Promise<void> {
  if (verdict === 'ok') return;
  const top = (await readMounts()).filter((m) => m.mountPoint === target).pop();
  if (top?.options.includes('ro')) return;
  await runJob('unmountAll', target).catch((err) => failed(target, err));
  throw new MountError(target, 'EROFS', `the bind mount at ${target} did not come out read-only; refusing to serve it`);
}

/**
 * mount(2) for kernels without open_tree (before 5.2). Exported so the path is tested on kernels
 * that have it. mount(2) follows symlinks, so the target is opened first (O_PATH: no read permission
 * needed; O_NOFOLLOW|O_DIRECTORY: a symlink in its place fails with ENOTDIR) and both ends are
 * reached through /proc/self/fd. A read-only bind is made read-only in a staging mount first (next
 * to the target, where start-up recovery removes it if a SIGKILL leaves it mounted) and then bound
 * to the target: the copy takes the flag, for our mount and the peers it propagates to alike.
 */
export function legacyBind(fd: number, target: string, readOnly: boolean): Promise<void> {
  return bindJob(fd, target, readOnly, true);
}

export const systemMounter: Mounter = {
  bind: (fd, target, readOnly) => bindJob(fd, target, readOnly, false),

  async bindBeneath(root, rel, target, readOnly) {
    const verdict = await walkJob<'ok' | 'check'>('bindBeneath', root, rel, target, readOnly).catch((err) => {
      throw err instanceof JobFailure ? failed(target, err) : err;
    });
    await checked(target, verdict);
  },

  // One job (mount-jobs.ts release): umount2 (UMOUNT_NOFOLLOW: a symlink planted at the target must
  // not lead the unmount elsewhere; a busy mount is detached), then rmdir, which answers EBUSY while
  // something is still mounted there (stacked mounts): unmount again. So the usual release is one
  // umount2 and one rmdir, with no extra call to find out it is done. A missing target is fine.
  async release(target) {
    await runJob('release', target).catch((err) => failed(target, err));
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
