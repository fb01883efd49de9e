// Bind mounts made and removed as one job each on a host worker (host-worker.ts): clearing a
// leftover mount, making the target, the open_tree/mount_setattr/move_mount of the bind and the
// read-only check run back to back on one thread, and a release is its umount2 and rmdir. mounter.ts
// says why each step is right and words the failures, which come back as fields:
// `{ code, step, call?, found? }` (found: what was at the target instead of a directory).
import type { WorkerHost } from './host-worker';

export interface MountFailure {
  code: string;
  /** What was being done, as in "cannot <step> the bind mount at <target>". */
  step: string;
  /** The libc call that failed, when one did. */
  call?: string;
  /** A bind refused (EINVAL/ENOTDIR) because the target is a symbolic link or not a directory. */
  found?: 'a symbolic link' | 'not a directory';
}

export function mountJobs(h: WorkerHost): void {
  const fs = h.fs;
  const path = require('node:path');
  // <linux/mount.h>, <fcntl.h>: parts may not use the constants of libc.ts (module scope).
  const MS_RDONLY = 0x1, MS_REMOUNT = 0x20, MS_BIND = 0x1000, MNT_DETACH = 0x2, UMOUNT_NOFOLLOW = 0x8;
  const OPEN_TREE_CLONE = 0x1, OPEN_TREE_CLOEXEC = 0o2000000, AT_FDCWD = -100, AT_EMPTY_PATH = 0x1000;
  const MOVE_MOUNT_F_EMPTY_PATH = 0x4, MOUNT_ATTR_RDONLY = 0x1, O_PATH = 0o10000000;
  const codeOf = (err: unknown) => ((err as { code?: unknown }).code as string) ?? 'EIO';
  const fail = (step: string, code: string, call?: string) => h.failure({ code, step, call });

  /** One libc call that must succeed; its result. */
  const must = (step: string, name: string, ...args: unknown[]): number => {
    const r = h.call(name, ...args);
    if (r.errno) throw fail(step, r.code, name);
    return r.ret;
  };

  /** umount2 of whatever is on top at `target`; false when nothing is (EINVAL, ENOENT); a busy one is detached. */
  const unmountTop = (target: string): boolean => {
    const r = h.call('umount2', target, UMOUNT_NOFOLLOW);
    if (!r.errno) return true;
    if (r.code === 'EINVAL' || r.code === 'ENOENT') return false;
    if (r.code !== 'EBUSY') throw fail('unmount', r.code, 'umount2');
    must('detach', 'umount2', target, UMOUNT_NOFOLLOW | MNT_DETACH);
    return true;
  };
  const unmountAll = (target: string) => {
    while (unmountTop(target));
  };

  /** mkdir of the target (parents too); true when made now, so nothing can be mounted on it yet. */
  const makeTarget = (target: string): boolean => {
    const made = (err: unknown) => {
      if (codeOf(err) === 'EEXIST') return false;
      throw fail('create the directory for', codeOf(err));
    };
    try {
      fs.mkdirSync(target, 0o755);
      return true;
    } catch (err) {
      if (codeOf(err) !== 'ENOENT') return made(err);
    }
    try {
      fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
    } catch (err) {
      throw fail('create the parents of', codeOf(err));
    }
    try {
      fs.mkdirSync(target, 0o755);
      return true;
    } catch (err) {
      return made(err);
    }
  };

  /** The new mount API: a detached copy, made read-only while detached, then attached (not following a final symlink). */
  const attach = (fd: number, target: string, readOnly: boolean): boolean => {
    const tree = h.call('open_tree', fd, '', OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (tree.errno) {
      if (tree.code === 'ENOSYS') return false;
      throw fail('make', tree.code, 'open_tree');
    }
    try {
      if (readOnly) must('make', 'mount_setattr', tree.ret, '', AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0, 0);
      must('make', 'move_mount', tree.ret, '', AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
    } finally {
      h.call('close', tree.ret);
    }
    return true;
  };

  /** mount(2) through /proc/self/fd for kernels without open_tree; a read-only one via a staging mount. */
  const legacyBind = (fd: number, target: string, readOnly: boolean) => {
    let handle: number;
    try {
      handle = fs.openSync(target, O_PATH | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
    } catch (err) {
      throw fail('make', codeOf(err));
    }
    const to = `/proc/self/fd/${handle}`;
    try {
      if (!readOnly) {
        must('make', 'mount', `/proc/self/fd/${fd}`, to, null, MS_BIND, null);
        return;
      }
      const staging = fs.mkdtempSync(path.join(path.dirname(target), '.staging-'));
      try {
        must('make', 'mount', `/proc/self/fd/${fd}`, staging, null, MS_BIND, null);
        must('make', 'mount', null, staging, null, MS_REMOUNT | MS_BIND | MS_RDONLY, null);
        must('make', 'mount', staging, to, null, MS_BIND, null);
      } finally {
        unmountAll(staging);
        fs.rmdirSync(staging);
      }
    } finally {
      fs.closeSync(handle);
    }
  };

  const found = (target: string): MountFailure['found'] => {
    try {
      const st = fs.lstatSync(target);
      return st.isDirectory() ? undefined : st.isSymbolicLink() ? 'a symbolic link' : 'not a directory';
    } catch {
      return undefined;
    }
  };

  /**
   * 'ok', or 'check' when access(2) could not tell whether a read-only bind is read-only (EACCES
   * without CAP_DAC_OVERRIDE): the caller reads the mount table. A bind that came out writable is
   * unmounted and refused with EROFS.
   */
  const bind = (fd: number, target: string, readOnly: boolean, legacy: boolean) => {
    if (!makeTarget(target)) unmountAll(target);
    try {
      if (legacy || !attach(fd, target, readOnly)) legacyBind(fd, target, readOnly);
    } catch (err) {
      const fields = (err as { jobFields?: Record<string, unknown> }).jobFields ?? { code: codeOf(err), step: 'make' };
      throw h.failure({ ...(fields as { code: string }), found: found(target) });
    }
    if (!readOnly) return 'ok';
    let refused = 'writable';
    try {
      fs.accessSync(target, fs.constants.W_OK);
    } catch (err) {
      refused = codeOf(err);
    }
    if (refused === 'EROFS') return 'ok';
    if (refused !== 'writable') return 'check';
    unmountAll(target);
    throw h.failure({ code: 'EROFS', step: 'verify' });
  };
  h.jobs.bind = bind as never;

  /** bind of the directory reached by tree-jobs.ts's no-follow walk from `root` through `parts`, closed after. */
  h.jobs.bindBeneath = ((root: string, parts: Uint8Array[], target: string, readOnly: boolean) => {
    const fd = (h.walk as (r: string, p: Uint8Array[]) => number)(root, parts);
    try {
      return bind(fd, target, readOnly, false);
    } finally {
      fs.closeSync(fd);
    }
  }) as never;

  h.jobs.unmountAll = ((target: string) => unmountAll(target)) as never;

  /** Unmounts and removes `target`: rmdir says EBUSY while something is still mounted there, so unmount again. */
  h.jobs.release = ((target: string) => {
    for (;;) {
      const unmounted = unmountTop(target);
      let code = 'removed';
      try {
        fs.rmdirSync(target);
      } catch (err) {
        code = codeOf(err);
      }
      if (code === 'removed' || code === 'ENOENT') return;
      if (code !== 'EBUSY' || !unmounted) throw fail('remove the directory of', code);
    }
  }) as never;
}
