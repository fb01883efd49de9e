// hostvol prune: removes dangling hostvol volumes through dockerd (anonymous ones unless --all).
import { Option, type Command } from 'commander';
import type { PruneResult } from '../admin/prune';
import { adminCommand, driverOf, humanBytes, print, withAdmin, type CommonFlags } from './common';

function human(r: PruneResult): string {
  const out = [r.dryRun ? 'Would remove:' : 'Deleted Volumes:'];
  for (const v of r.volumes) {
    if (v.error) out.push(`${v.name}: not removed: ${v.error}`);
    else out.push(`${v.name}${v.dataKept ? ' (data kept)' : ` ${humanBytes(v.reclaimedBytes)}`}`);
  }
  out.push('', `Total ${r.dryRun ? 'reclaimable' : 'reclaimed'} space: ${humanBytes(r.reclaimedBytes)}`);
  return `${out.join('\n')}\n`;
}

export function pruneCommand(): Command {
  return adminCommand('prune', 'remove dangling hostvol volumes through dockerd (anonymous ones unless --all)')
    .option('-a, --all', 'also named volumes, not only anonymous ones')
    .addOption(new Option('--filter <label=K[=V]>', 'only volumes with this label (repeatable)').argParser((v: string, prev: string[] = []) => [...prev, v]))
    .option('--dry-run', 'list what would be removed, remove nothing')
    .action(async (flags: CommonFlags & { all?: boolean; filter?: string[]; dryRun?: boolean }) => {
      const labels = (flags.filter ?? []).map((f) => {
        if (!f.startsWith('label=')) throw new Error(`--filter "${f}": only label=KEY or label=KEY=VALUE is supported`);
        return f.slice('label='.length);
      });
      const body = { all: !!flags.all, dryRun: !!flags.dryRun, labels, driver: driverOf(flags) };
      const result = await withAdmin(flags, (c) => c.json<PruneResult>('POST', '/prune', body));
      print(flags, result, () => human(result));
      if (result.volumes.some((v) => v.error)) process.exitCode = 1;
    });
}
