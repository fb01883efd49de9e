// hostvol leases [NAME]: mount leases (one per dockerd mount ID), whether each is stale, and
// whether a container still has the volume mounted.
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
      const rows = vols.flatMap((v) => v.leases.map((l) => [v.volume, l.id, l.count, l.generation, l.stale ? 'yes' : 'no', visibility(v.mountVisible)]));
      print(flags, vols, () => table(['VOLUME', 'ID', 'COUNT', 'GENERATION', 'STALE', 'MOUNTED'], rows));
    });
}
