// hostvol release NAME (--id ID | --stale) [--force]: drops leases by hand, e.g. one a lost Unmount
// left; refused while a container still has the volume mounted, unless --force.
import type { Command } from 'commander';
import type { ReleaseResult } from '../volumes/leases';
import { adminCommand, print, withAdmin, type CommonFlags } from './common';

export function releaseCommand(): Command {
  return adminCommand('release', 'release mount leases of a volume')
    .argument('<name>', 'volume name')
    .option('--id <id>', 'the lease (dockerd mount ID) to release')
    .option('--stale', 'every lease from an earlier dockerd or hostvol')
    .option('--force', 'even when a container still has the volume mounted, or hostvol cannot tell')
    .action(async (name: string, flags: CommonFlags & { id?: string; stale?: boolean; force?: boolean }) => {
      const body = { id: flags.id, stale: flags.stale, force: !!flags.force };
      const r = await withAdmin(flags, (c) => c.json<ReleaseResult>('POST', `/leases/${encodeURIComponent(name)}/release`, body));
      print(flags, r, () => (r.released.length ? r.released.map((id) => `released ${r.volume} ${id}\n`).join('') : `${r.volume}: no lease to release\n`));
    });
}
