// hostvol df: disk usage and inodes of each volume and in total, and the free space of each file
// system they are on (what `docker system df -v` leaves out for plugin volumes).
import type { Command } from 'commander';
import type { DiskUsage } from '../admin/sizes';
import { adminCommand, humanBytes, print, table, withAdmin, type CommonFlags } from './common';

function human(u: DiskUsage): string {
  const rows = u.volumes.map((v) => (v.error ? [v.name, '-', '-', '-', v.error] : [v.name, humanBytes(v.bytes!), humanBytes(v.apparentBytes!), v.inodes!, '']));
  rows.push(['TOTAL', humanBytes(u.total.bytes), humanBytes(u.total.apparentBytes), u.total.inodes, '']);
  const fsRows = u.filesystems.map((f) => [f.path, humanBytes(f.freeBytes), humanBytes(f.totalBytes), f.freeInodes, f.volumes]);
  return `${table(['VOLUME', 'SIZE', 'APPARENT', 'INODES', 'ERROR'], rows)}\n${table(['FILESYSTEM OF', 'FREE', 'SIZE', 'FREE INODES', 'VOLUMES'], fsRows)}`;
}

export function dfCommand(): Command {
  return adminCommand('df', 'disk usage per volume and free space per file system')
    .argument('[name...]', 'only these volumes')
    .action(async (names: string[], flags: CommonFlags) => {
      const q = names.map((n) => `name=${encodeURIComponent(n)}`).join('&');
      const usage = await withAdmin(flags, (c) => c.json<DiskUsage>('GET', `/df${q ? `?${q}` : ''}`));
      print(flags, usage, () => human(usage));
    });
}
