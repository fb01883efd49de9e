// hostvol leases [NAME]: mount leases (one per dockerd mount ID) on every node, each with its node;
// for this node's, whether each is stale and whether a container here still has the volume mounted
// (another node's only that node can tell: shown as -).
import type { Command } from 'commander';
import type { VolumeLeases } from '../admin/leases-routes';
import { adminCommand, print, table, withAdmin, type CommonFlags } from './common';

const visibility = (v: boolean | null) => (v === null ? 'unknown' : v ? 'yes' : 'no');

export function leasesCommand(): Command {
  return adminCommand('leases', 'show mount leases (all volumes, or one)')
    .argument('[name]', 'only this volume')
    .action(async (name: string | undefined, flags: CommonFlags) => {
      const route = name === undefined ? '/leases' : `/leases/${encodeURIComponent(name)}`;
      const vols = await withAdmin(flags, (c) => c.json<VolumeLeases[]>('GET', route));
      const rows = vols.flatMap((v) =>
        v.leases.map((l) => {
          const here = l.node === v.node;
          return [v.volume, l.node, l.id, l.count, l.generation, here ? (l.stale ? 'yes' : 'no') : '-', here ? visibility(v.mountVisible) : '-'];
        }),
      );
      print(flags, vols, () => {
        const unknown = [...new Set(vols.map((v) => v.othersUnknown).filter(Boolean))];
        return table(['VOLUME', 'NODE', 'ID', 'COUNT', 'GENERATION', 'STALE', 'MOUNTED'], rows) + unknown.map((u) => `(${u})
`).join('');
      });
    });
}
