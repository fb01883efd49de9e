// hostvol ls: every volume hostvol holds, with its host directory, state, lease count and the nodes
// holding those leases (in a cluster, any node; otherwise this one).
import type { Command } from 'commander';
import type { VolumeSummary } from '../admin/volumes-routes';
import { adminCommand, print, table, withAdmin, type CommonFlags } from './common';

export function lsCommand(): Command {
  return adminCommand('ls', 'list the volumes hostvol holds').action(async (flags: CommonFlags) => {
    const vols = await withAdmin(flags, (c) => c.json<VolumeSummary[]>('GET', '/volumes'));
    print(flags, vols, () => table(['NAME', 'STATE', 'LEASES', 'NODES', 'HOST PATH'], vols.map((v) => [v.name, v.state, v.leases, v.nodes.join(',') || '-', v.hostPath])));
  });
}
