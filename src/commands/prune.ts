// hostvol prune: removes dangling hostvol volumes THROUGH dockerd (DELETE /volumes/NAME), so dockerd
// forgets them too and refuses any a container took meanwhile. Like Docker 23+ for local volumes, only
// anonymous ones unless --all. dockerd decides what is dangling; hostvol's admin API says which are
// its own, whether removing them deletes their data, and how big they are.
import { Option, type Command } from 'commander';
import type { DockerClient, DockerVolume } from '../admin/docker';
import type { DiskUsage } from '../admin/sizes';
import type { VolumeSummary } from '../admin/volumes-routes';
import { HostvolError, describe } from '../errors';
import type { AdminClient } from './client';
import { adminCommand, driverName, humanBytes, print, withAdmin, withDocker, type CommonFlags } from './common';

export interface Pruned {
  name: string;
  /** Bytes freed: the volume's disk usage when removing it deletes its data, else 0. */
  reclaimedBytes: number;
  dataKept: boolean;
  error?: string;
}

export interface PruneResult {
  dryRun: boolean;
  driver: string;
  volumes: Pruned[];
  reclaimedBytes: number;
}

/** Docker 20.10 names anonymous volumes with 64 hex digits and labels nothing; Docker 23+ adds this label. */
export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';
export const isAnonymous = (v: DockerVolume): boolean => /^[0-9a-f]{64}$/.test(v.Name) || Object.hasOwn(v.Labels ?? {}, ANONYMOUS_LABEL);

function human(r: PruneResult): string {
  const out = [r.dryRun ? 'Would remove:' : 'Deleted Volumes:'];
  for (const v of r.volumes) {
    if (v.error) out.push(`${v.name}: not removed: ${v.error}`);
    else out.push(`${v.name}${v.dataKept ? ' (data kept)' : ` ${humanBytes(v.reclaimedBytes)}`}`);
  }
  out.push('', `Total ${r.dryRun ? 'reclaimable' : 'reclaimed'} space: ${humanBytes(r.reclaimedBytes)}`);
  return `${out.join('\n')}\n`;
}

type PruneFlags = CommonFlags & { all?: boolean; filter?: string[]; dryRun?: boolean };

export function pruneCommand(): Command {
  return adminCommand('prune', 'remove dangling hostvol volumes through dockerd (anonymous ones unless --all)')
    .option('-a, --all', 'also named volumes, not only anonymous ones')
    .addOption(new Option('--filter <label=K[=V]>', 'only volumes with this label (repeatable)').argParser((v: string, prev: string[] = []) => [...prev, v]))
    .option('--dry-run', 'list what would be removed, remove nothing')
    .action(async (flags: PruneFlags) => {
      const labels = (flags.filter ?? []).map((f) => {
        const m = /^label=([^=]+(=.*)?)$/.exec(f);
        if (!m) throw new HostvolError(`--filter "${f}": only label=KEY or label=KEY=VALUE is supported`);
        return m[1];
      });
      const result = await withAdmin(flags, (admin) => withDocker(flags, (docker) => prune(flags, labels, admin, docker)));
      print(flags, result, () => human(result));
      if (result.volumes.some((v) => v.error)) process.exitCode = 1;
    });
}

async function prune(
  flags: PruneFlags, labels: string[],
  admin: AdminClient, docker: DockerClient,
): Promise<PruneResult> {
  const why = 'hostvol prune';
  const driver = await driverName(flags, admin);
  const filters: Record<string, string[]> = { dangling: ['true'], driver: [driver] };
  if (labels.length) filters.label = labels;
  const ours = new Map((await admin.json<VolumeSummary[]>('GET', '/volumes')).map((v) => [v.name, v]));
  // dockerd's driver filter already picks ours; checking the driver and hostvol's own list again keeps
  // out a volume of another driver that shares a name with one of hostvol's.
  const dangling = (await docker.listVolumes(filters, why)).filter((d) => d.Driver === driver && ours.get(d.Name)?.state === 'ready');
  const picked = dangling.filter((d) => flags.all || isAnonymous(d)).map((d) => d.Name).sort();
  const sizes = new Map<string, number>();
  const deleting = picked.filter((n) => ours.get(n)!.deletesData);
  if (deleting.length) {
    const usage = await admin.json<DiskUsage>('GET', `/df?${deleting.map((n) => `name=${encodeURIComponent(n)}`).join('&')}`);
    for (const v of usage.volumes) sizes.set(v.name, v.bytes ?? 0);
  }
  const out: Pruned[] = [];
  for (const name of picked) {
    const p: Pruned = { name, reclaimedBytes: sizes.get(name) ?? 0, dataKept: !ours.get(name)!.deletesData };
    if (!flags.dryRun) {
      try {
        await docker.removeVolume(name, why);
      } catch (err) {
        if (!(err instanceof HostvolError)) throw err;
        // A container took it since dockerd listed it (409), or hostvol refused: name it, go on.
        Object.assign(p, { reclaimedBytes: 0, error: describe(err) });
      }
    }
    out.push(p);
  }
  const reclaimedBytes = out.reduce((n, p) => n + p.reclaimedBytes, 0);
  return { dryRun: !!flags.dryRun, driver, volumes: out, reclaimedBytes };
}
