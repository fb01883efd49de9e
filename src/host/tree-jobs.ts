// The no-follow walks that a request runs whole on a host worker (host-worker.ts): open or make a
// path beneath a trusted root, and retire an empty directory. Each step is the same system call as
// in tree-dir.ts: open of `/proc/self/fd/<parent>/<name>` with O_NOFOLLOW|O_DIRECTORY, which is
// openat(parent, name) refusing a symlink; only the thread differs, and the thread hand-offs (one
// per job instead of one per call). Failures are reported as fields (which component, which errno,
// a symlink or not), and tree.ts words them: the messages stay in one place.
import type { WorkerHost } from './host-worker';

/** Where a walk failed: `index` is the component (-1: the root itself), `step` what was being done. */
export interface WalkFailure {
  code: string;
  index: number;
  step: 'open' | 'mkdir' | 'set up' | 'rename' | 'remove';
  /** For ENOTDIR on open: the entry is a symbolic link (else: not a directory). */
  symlink?: boolean;
}

export function treeJobs(h: WorkerHost): void {
  const fs = h.fs;
  const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants;
  const at = (fd: number, name: Buffer) => Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), name]);
  const codeOf = (err: unknown) => ((err as { code?: unknown }).code as string) ?? 'EIO';
  const fail = (code: string, index: number, step: string, more: Record<string, unknown> = {}) => h.failure({ code, index, step, ...more });
  const closeQuietly = (fd: number) => {
    try {
      fs.closeSync(fd);
    } catch {
      // Linux frees the descriptor even when close reports an error.
    }
  };

  const openRoot = (root: string): number => {
    try {
      return fs.openSync(root, O_RDONLY | O_DIRECTORY);
    } catch (err) {
      throw fail(codeOf(err), -1, 'open');
    }
  };

  /** openat(parent, name, O_NOFOLLOW|O_DIRECTORY); ELOOP (a symlink) and ENOTDIR both come back as ENOTDIR. */
  const openChild = (parent: number, name: Buffer, index: number): number => {
    try {
      return fs.openSync(at(parent, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    } catch (err) {
      const code = codeOf(err);
      if (code !== 'ELOOP' && code !== 'ENOTDIR') throw fail(code, index, 'open');
      let symlink = false;
      try {
        symlink = fs.lstatSync(at(parent, name)).isSymbolicLink();
      } catch {
        // gone meanwhile: say "not a directory"
      }
      throw fail('ENOTDIR', index, 'open', { symlink });
    }
  };

  /** Steps into `name`, closing `parent` whatever happens. */
  const step = (parent: number, name: Buffer, index: number): number => {
    try {
      return openChild(parent, name, index);
    } finally {
      closeQuietly(parent);
    }
  };

  const walk = (root: string, parts: Uint8Array[]): number => {
    let fd = openRoot(root);
    for (let i = 0; i < parts.length; i++) fd = step(fd, h.bytes(parts[i]), i);
    return fd;
  };
  h.jobs.openBeneath = walk as never;
  // For other parts' jobs that start with the same walk (mount-jobs.ts bindBeneath).
  h.walk = walk;

  /** mkdir -p with no-follow steps; each directory made gets exactly `mode` and is fsynced with its parent. */
  h.jobs.makeBeneath = ((root: string, parts: Uint8Array[], mode: number, keepOpen: boolean) => {
    let made = -1;
    let fd = openRoot(root);
    try {
      for (let i = 0; i < parts.length; i++) {
        const name = h.bytes(parts[i]);
        let created = false;
        try {
          fs.mkdirSync(at(fd, name), mode);
          created = true;
        } catch (err) {
          // EEXIST: it exists (or another creator won the race); the no-follow open judges what it is.
          if (codeOf(err) !== 'EEXIST') throw fail(codeOf(err), i, 'mkdir');
        }
        const parent = fd;
        fd = -1;
        try {
          fd = openChild(parent, name, i);
          if (created) {
            if (made < 0) made = i;
            // mkdir's mode was narrowed by the umask; a crash must not lose the new entry.
            try {
              fs.fchmodSync(fd, mode);
              fs.fsyncSync(fd);
              fs.fsyncSync(parent);
            } catch (err) {
              throw fail(codeOf(err), i, 'set up');
            }
          }
        } finally {
          closeQuietly(parent);
        }
      }
      if (keepOpen) return { fd, made };
      closeQuietly(fd);
      return { fd: -1, made };
    } catch (err) {
      if (fd >= 0) closeQuietly(fd);
      throw err;
    }
  }) as never;

  /** The mount a descriptor lies on (fdinfo's mnt_id) and its device: what "the same mount" means. */
  const placeOf = (fd: number) => {
    const m = /^mnt_id:\s*(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
    return `${m ? m[1] : '?'}:${fs.fstatSync(fd).dev}`;
  };

  /**
   * Retires directory `name` of `parent` when it is plainly empty: renamed to `trash`, removed, and
   * the parent fsynced once. Answers 'removed'; 'renamed' when it was renamed but something is in it
   * after all (put there meanwhile: the caller deletes the trash with the full walk); 'absent' when
   * there is no such entry; 'busy' when it is not an empty directory on the parent's own mount, and
   * nothing was changed. Whatever is at `name` by then is what gets renamed, and it is never
   * followed: rename and rmdir act on the entry itself.
   */
  const retire = (parent: number, name: Buffer, trash: Buffer): string => {
    let child: number;
    try {
      child = fs.openSync(at(parent, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    } catch (err) {
      return codeOf(err) === 'ENOENT' ? 'absent' : 'busy';
    }
    try {
      // Something mounted on it, or entries in it: the caller checks for mounts before deleting.
      if (placeOf(child) !== placeOf(parent) || fs.readdirSync(at(child, Buffer.from('.'))).length > 0) return 'busy';
    } finally {
      closeQuietly(child);
    }
    try {
      fs.renameSync(at(parent, name), at(parent, trash));
    } catch (err) {
      if (codeOf(err) === 'ENOENT') return 'absent';
      throw fail(codeOf(err), 0, 'rename');
    }
    let left = false;
    try {
      fs.rmdirSync(at(parent, trash));
    } catch (err) {
      if (codeOf(err) !== 'ENOENT') left = true;
    }
    try {
      fs.fsyncSync(parent);
    } catch (err) {
      throw fail(codeOf(err), 0, 'remove', { renamed: true });
    }
    return left ? 'renamed' : 'removed';
  };

  /**
   * Walks to the parent directory (`root` and `parts`) and retires its entry `name` when that is
   * plainly empty: renamed to `trash`, removed, and the parent fsynced once. Outcomes: 'removed'
   * (the parent is closed again); 'renamed' when it was renamed but something is in it after all
   * (put there meanwhile: the caller deletes the trash with the full walk); 'absent' when there is
   * no such entry; 'busy' when it is not an empty directory on the parent's own mount, and nothing
   * was changed. Except after 'removed', the open parent is handed back (`fd`) for the caller to go
   * on with. Whatever is at `name` by then is what gets renamed, never followed: rename and rmdir
   * act on the entry itself.
   */
  h.jobs.retireBeneath = ((root: string, parts: Uint8Array[], rawName: Uint8Array, rawTrash: Uint8Array) => {
    const parent = walk(root, parts);
    let outcome: string;
    try {
      outcome = retire(parent, h.bytes(rawName), h.bytes(rawTrash));
    } catch (err) {
      closeQuietly(parent);
      throw err;
    }
    if (outcome !== 'removed') return { outcome, fd: parent };
    closeQuietly(parent);
    return { outcome, fd: -1 };
  }) as never;

  /**
   * One directory of measureTree (tree-walk.ts): the directory `name` in `parent` (or `parent`
   * itself when `name` is null) counted whole on this thread: its own fstat, an lstat of every
   * non-directory in it, and the names of the subdirectories to measure next, each by a job of its
   * own, so a big tree is many short jobs and never holds a worker for long. Synchronous calls cost
   * one system call each here, where the promise API paid a thread-pool round trip per entry: that
   * made df slower than du (bench/archive-df.ts). Inodes with more than one link come back apart
   * ([ino, bytes, apparent]) for the caller to count once across the tree. `name` is opened
   * O_NOFOLLOW|O_DIRECTORY; when it is not a directory any more it is counted as an entry (unless on
   * another device); a directory on another mount (mount id or st_dev differs) is not counted at
   * all. The opened directory's fd comes back (`fd`) only when it has subdirectories; the caller
   * closes it after them.
   */
  h.jobs.measureDir = ((parent: number, rawName: Uint8Array | null, mnt: number, dev: number) => {
    const total = { bytes: 0, apparentBytes: 0, inodes: 0, linked: [] as number[][], dirs: [] as Buffer[], fd: -1, counted: true };
    const count = (st: import('node:fs').Stats) => {
      if (st.nlink > 1 && !st.isDirectory()) total.linked.push([st.ino, st.blocks * 512, st.size]);
      else {
        total.bytes += st.blocks * 512;
        total.apparentBytes += st.size;
        total.inodes += 1;
      }
    };
    const other = (dirFd: number, name: Buffer) => {
      const st = fs.lstatSync(at(dirFd, name), { throwIfNoEntry: false }); // gone meanwhile: not counted
      // A directory here could not be entered: a mount point, someone else's.
      if (st && st.dev === dev && !st.isDirectory()) count(st);
    };
    let fd = parent;
    if (rawName) {
      const name = h.bytes(rawName);
      try {
        fd = fs.openSync(at(parent, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      } catch (err) {
        const code = codeOf(err);
        if (code !== 'ENOTDIR' && code !== 'ELOOP' && code !== 'ENOENT') throw fail(code, 0, 'open');
        other(parent, name); // not a directory (any more)
        return total;
      }
    }
    const own = fd !== parent;
    try {
      const m = /^mnt_id:\s*(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
      const st = fs.fstatSync(fd);
      if (!m || Number(m[1]) !== mnt || st.dev !== dev) {
        total.counted = false;
        return total;
      }
      count(st);
      for (const e of fs.readdirSync(at(fd, Buffer.from('.')), { encoding: 'buffer', withFileTypes: true }) as unknown as { name: Buffer; isDirectory(): boolean; isFile(): boolean; isSymbolicLink(): boolean; isFIFO(): boolean; isSocket(): boolean; isBlockDevice(): boolean; isCharacterDevice(): boolean }[]) {
        // A directory, or of a type the file system did not report (DT_UNKNOWN): opening it will tell.
        const maybeDir = e.isDirectory() || !(e.isFile() || e.isSymbolicLink() || e.isFIFO() || e.isSocket() || e.isBlockDevice() || e.isCharacterDevice());
        if (maybeDir) total.dirs.push(e.name);
        else other(fd, e.name);
      }
      if (own && total.dirs.length) total.fd = fd;
      return total;
    } finally {
      if (own && total.fd < 0) closeQuietly(fd);
    }
  }) as never;
}
