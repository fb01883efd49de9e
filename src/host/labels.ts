// SELinux relabelling for the z/Z options: writes the container file label into the
// security.selinux xattr of every entry of a volume's tree, the way `chcon -R` would.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { mountPoints } from './mountinfo';
import { isInside } from './paths';

const run = promisify(execFile);

/** The type container processes may read and write; categories per container stay dockerd's job. */
export const CONTAINER_FILE_LABEL = 'system_u:object_r:container_file_t:s0';

export type SelinuxMode = 'auto' | 'on' | 'off';

export interface Labeler {
  /** Whether labels are written at all (the `--selinux` setting, `auto` = SELinux is present). */
  readonly enabled: boolean;
  relabel(dir: string): Promise<void>;
}

export function createLabeler(mode: SelinuxMode, selinuxfs = '/sys/fs/selinux'): Labeler {
  const enabled = mode === 'on' || (mode === 'auto' && fs.existsSync(selinuxfs));
  return { enabled, relabel: (dir) => (enabled ? relabelTree(dir) : Promise.resolve()) };
}

const BATCH = 256;

/** Labels `dir` and everything below it; symlinks are labelled themselves, never followed. */
export async function relabelTree(dir: string, label = CONTAINER_FILE_LABEL): Promise<void> {
  const root = await fs.promises.lstat(dir);
  // Whatever is mounted inside the volume belongs to someone else; bind mounts share st_dev, so ask the mount table.
  const mounts = new Set(mountPoints().filter((m) => m !== dir && isInside(m, dir)));
  let batch: string[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const files = batch;
    batch = [];
    try {
      await run('setfattr', ['-h', '-n', 'security.selinux', '-v', label, '--', ...files]);
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`relabelling ${dir} failed: ${(e.stderr || e.message).trim()}`);
    }
  };
  const walk = async (p: string): Promise<void> => {
    if (mounts.has(p)) return;
    batch.push(p);
    if (batch.length >= BATCH) await flush();
    const st = await fs.promises.lstat(p);
    if (!st.isDirectory() || st.dev !== root.dev) return;
    for (const name of await fs.promises.readdir(p)) await walk(path.join(p, name));
  };
  await walk(dir);
  await flush();
}
