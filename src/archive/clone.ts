// `clone`: a copy of one volume's tree into another's, keeping owners, modes, mtimes, xattrs, hard
// links, symlinks, fifos and devices, with file contents reflinked (FICLONE) where the file system
// shares extents and copied in the kernel (copy_file_range) where it does not; sparse files keep
// their holes. Walk and build run together on a worker (walk.ts, builder.ts), into a staging
// directory swapped in at the end (staging.ts), so a failed clone leaves the target as it was.
import { replaceContent } from './staging';
import { runJob } from './worker-host';

export interface CloneResult {
  entries: number;
  bytes: number;
  warnings: string[];
}

/** Copies the tree at `src` into the (empty unless `force`) directory `dst`. */
export async function cloneTree(src: string, dst: string, opts: { force?: boolean; what?: string } = {}): Promise<CloneResult> {
  return replaceContent(dst, { force: opts.force, what: opts.what ?? dst }, async (staging) => {
    const r = await runJob({ op: 'clone', src, dst: staging });
    return { entries: r.entries, bytes: r.bytes, warnings: r.warnings };
  });
}
