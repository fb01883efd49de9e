// hostvol prune: removes dangling hostvol volumes THROUGH dockerd (DELETE /volumes/NAME), so dockerd
// forgets them too and refuses any a container took meanwhile. Like Docker 23+ for local volumes,
// only anonymous ones unless `all`. dockerd decides what is dangling; hostvol only picks its own.
import * as path from 'node:path';
import { HostvolError, InvalidRequestError, describe } from '../errors';
import type { Driver } from '../volumes/driver';
import { onRemove } from '../volumes/volume';
import type { AdminContext } from './context';
import type { DockerVolume } from './docker';
import { measureVolume } from './sizes';

export interface PruneRequest {
  all?: boolean;
  /** label=K or label=K=V filters, as `docker volume prune --filter`. */
  labels?: string[];
  dryRun?: boolean;
  /** The driver name dockerd shows for hostvol's volumes (legacy: hostvol; managed: the plugin's name:tag). */
  driver?: string;
}

export interface Pruned {
  name: string;
  /** Bytes freed: the volume's disk usage when its data is deleted on remove, 0 when it is kept. */
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

/** Docker 20.10 names anonymous volumes with 64 hex digits; Docker 23+ also labels them. */
export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';
export const isAnonymous = (v: DockerVolume): boolean => /^[0-9a-f]{64}$/.test(v.Name) || Object.hasOwn(v.Labels ?? {}, ANONYMOUS_LABEL);

/** The name dockerd knows this hostvol by when the client does not say: a legacy plugin is named after its socket. */
export function defaultDriver(ctx: AdminContext): string {
  if (ctx.config.propagatedMount !== undefined) {
    throw new InvalidRequestError('a managed hostvol does not know the name dockerd gave it; pass the plugin name (hostvol --plugin NAME …)');
  }
  return path.basename(ctx.config.socket).replace(/\.sock$/, '');
}

export async function prune(ctx: AdminContext, req: PruneRequest): Promise<PruneResult> {
  const driverName = req.driver ?? defaultDriver(ctx);
  for (const l of req.labels ?? []) {
    if (l === '' || l.startsWith('=')) throw new InvalidRequestError(`prune: label filter "${l}" must be label=KEY or label=KEY=VALUE`);
  }
  const why = 'hostvol prune';
  const filters: Record<string, string[]> = { dangling: ['true'], driver: [driverName] };
  if (req.labels?.length) filters.label = req.labels;
  const driver: Driver = await ctx.ready;
  // dockerd's driver filter matches by prefix-free equality on the name it stored; checking again here
  // keeps a volume of another driver that happens to share a name with one of ours out for sure.
  const dangling = (await ctx.docker.listVolumes(filters, why)).filter((d) => d.Driver === driverName && driver.volumes.get(d.Name)?.state === 'ready');
  const picked = dangling.filter((d) => req.all || isAnonymous(d)).sort((a, b) => a.Name.localeCompare(b.Name));
  const out: Pruned[] = [];
  for (const d of picked) {
    const v = driver.volumes.get(d.Name);
    if (!v) continue; // removed meanwhile
    const kept = onRemove(v) === 'keep';
    const size = kept ? 0 : ((await measureVolume(driver, v)).bytes ?? 0);
    if (req.dryRun) {
      out.push({ name: d.Name, reclaimedBytes: size, dataKept: kept });
      continue;
    }
    try {
      await ctx.docker.removeVolume(d.Name, why);
      out.push({ name: d.Name, reclaimedBytes: size, dataKept: kept });
    } catch (err) {
      if (!(err instanceof HostvolError)) throw err;
      // A container took it since dockerd listed it (409), or its remove failed: name it, go on.
      out.push({ name: d.Name, reclaimedBytes: 0, dataKept: true, error: describe(err) });
    }
  }
  const reclaimedBytes = out.reduce((n, p) => n + (p.error ? 0 : p.reclaimedBytes), 0);
  return { dryRun: !!req.dryRun, driver: driverName, volumes: out, reclaimedBytes };
}
