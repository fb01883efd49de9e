// hostvol release NAME (--id ID | --stale) [--force]: drops leases by hand, e.g. one a lost Unmount
// left; refused while a container still has the volume mounted, unless --force.
import type { Command } from 'commander';
import { LIVE, type ContainerUse } from '../admin/docker';
import { HostvolError } from '../errors';
import type { ReleaseResult } from '../volumes/leases';
import { adminCommand, print, withAdmin, withDocker, type CommonFlags } from './common';

/**
 * dockerd's word on its own containers, asked before hostvol is: hostvol judges from the host's mount
 * tables, which also covers containers dockerd forgot or another engine runs, but cannot always see
 * them (see README, inspect). A dockerd that does not answer leaves the judgement to hostvol alone.
 */
async function liveUsers(flags: CommonFlags, name: string): Promise<ContainerUse[]> {
  const users = await withDocker(flags, (d) => d.containersUsing(name, `hostvol release ${name}`)).catch(() => []);
  return users.filter((c) => LIVE.includes(c.state));
}

export function releaseCommand(): Command {
  return adminCommand('release', 'release mount leases of a volume')
    .argument('<name>', 'volume name')
    .option('--id <id>', 'the lease (dockerd mount ID) to release')
    .option('--stale', 'every lease from an earlier dockerd or hostvol')
    .option('--force', 'even when a container still has the volume mounted, or hostvol cannot tell')
    .action(async (name: string, flags: CommonFlags & { id?: string; stale?: boolean; force?: boolean }) => {
      if (!flags.force) {
        const live = await liveUsers(flags, name);
        if (live.length) {
          throw new HostvolError(
            `volume "${name}": not released: dockerd says ${live.map((c) => `${c.name} (${c.state})`).join(', ')} use${live.length === 1 ? 's' : ''} it; ` +
              'stop the container first, or pass --force if you know the lease is not its',
          );
        }
      }
      const body = { id: flags.id, stale: flags.stale, force: !!flags.force };
      const r = await withAdmin(flags, (c) => c.json<ReleaseResult>('POST', `/leases/${encodeURIComponent(name)}/release`, body));
      print(flags, r, () => (r.released.length ? r.released.map((id) => `released ${r.volume} ${id}\n`).join('') : `${r.volume}: no lease to release\n`));
    });
}
