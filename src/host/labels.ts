// SELinux relabelling for the z/Z options: writes the container file label into the security.selinux
// xattr of every entry of a volume's tree, the way `chcon -R` would, through the open directory
// (tree.ts), so neither a symlink nor a swapped path component can send the labels elsewhere.
import * as fs from 'node:fs';
import { setXattrTree, type Dir } from './tree';

/** The type container processes may read and write; categories per container stay dockerd's job. */
export const CONTAINER_FILE_LABEL = 'system_u:object_r:container_file_t:s0';

export type SelinuxMode = 'auto' | 'on' | 'off';

export interface Labeler {
  /** Whether labels are written at all (the `--selinux` setting, `auto` = SELinux is present). */
  readonly enabled: boolean;
  relabel(dir: Dir): Promise<void>;
}

export function createLabeler(mode: SelinuxMode, selinuxfs = '/sys/fs/selinux'): Labeler {
  const enabled = mode === 'on' || (mode === 'auto' && fs.existsSync(selinuxfs));
  return {
    enabled,
    relabel: async (dir) => {
      if (!enabled) return;
      try {
        await setXattrTree(dir, 'security.selinux', CONTAINER_FILE_LABEL);
      } catch (err) {
        throw new Error(`relabelling ${dir.path} failed: ${(err as Error).message}`);
      }
    },
  };
}
