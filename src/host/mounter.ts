// Bind mounts: a volume's directory made visible (read-only when asked) at another path, and their
// removal. It shells out to mount(8)/umount(8), which every host and the plugin rootfs carry.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { isReadOnlyMount, mountPoints } from './mountinfo';
import { isInside } from './paths';

const run = promisify(execFile);

export interface Mounter {
  bind(source: string, target: string, readOnly: boolean): Promise<void>;
  /** Unmounts `target` if it is a mount point and removes the (then empty) directory. */
  release(target: string): Promise<void>;
  /** Mount points strictly below `dir`, deepest first. */
  mountsUnder(dir: string): string[];
  isMountPoint(target: string): boolean;
}

async function cmd(file: string, args: string[]): Promise<void> {
  try {
    await run(file, args, { timeout: 30_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

export const systemMounter: Mounter = {
  async bind(source, target, readOnly) {
    fs.mkdirSync(target, { recursive: true, mode: 0o755 });
    // A leftover mount here (failed unmount, crash) would be stacked over; clear it first.
    while (this.isMountPoint(target)) await cmd('umount', [target]);
    if (!readOnly) {
      await cmd('mount', ['--bind', source, target]);
      return;
    }
    // A remount to ro changes only the one mount, not the peers it propagated to (a managed plugin's
    // propagated mount, the host's copy dockerd uses). So make a read-only bind in a staging point
    // first; a bind of it copies the read-only flag to the new mount and to its peers. The staging
    // point sits next to the target, where start-up recovery removes it if a SIGKILL leaves it mounted.
    const staging = fs.mkdtempSync(path.join(path.dirname(target), '.staging-'));
    try {
      await cmd('mount', ['--bind', source, staging]);
      await cmd('mount', ['-o', 'remount,bind,ro', staging]);
      await cmd('mount', ['--bind', staging, target]);
    } finally {
      while (this.isMountPoint(staging)) await cmd('umount', [staging]);
      fs.rmdirSync(staging);
    }
    if (!isReadOnlyMount(target)) {
      await cmd('umount', [target]);
      throw new Error(`the bind mount at ${target} did not come out read-only; refusing to serve it`);
    }
  },

  async release(target) {
    while (this.isMountPoint(target)) {
      try {
        await cmd('umount', [target]);
      } catch (err) {
        // Busy (a process still has its cwd there): detach it now; the kernel frees it when idle.
        await cmd('umount', ['-l', target]).catch(() => {
          throw err;
        });
      }
    }
    try {
      fs.rmdirSync(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  },

  mountsUnder(dir) {
    return mountPoints()
      .filter((m) => m !== dir && isInside(m, dir))
      .sort((a, b) => b.length - a.length);
  },

  isMountPoint(target) {
    return mountPoints().includes(target);
  },
};
