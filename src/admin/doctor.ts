// hostvol doctor: finds where hostvol's records, the data root and dockerd disagree, and with `fix`
// repairs only what cannot lose data or break a running container; everything else is listed with
// the command that settles it, for the operator to decide. dockerd's side comes from the client (the
// CLI asks dockerd, which a managed plugin cannot reach), as the names of the volumes dockerd knows.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { STAGING_NAME, lockStaging } from '../archive/staging';
import { openBeneath, removeEntry } from '../host/tree';
import { openChild } from '../host/tree-dir';
import type { Driver } from '../volumes/driver';
import { mountVisible } from '../volumes/leases';
import type { VolumeOptions } from '../volumes/options';

export type FindingKind = 'orphan-directory' | 'interrupted-import' | 'missing-directory' | 'unknown-to-dockerd' | 'lease-without-mount' | 'cannot-tell';

export interface Finding {
  kind: FindingKind;
  /** The volume concerned, or the directory for an orphan. */
  subject: string;
  detail: string;
  /** With fix: what was done; absent when it was left for the operator (then `detail` says how). */
  fixed?: string;
}

export interface DoctorReport {
  findings: Finding[];
  /** Why dockerd's side was not checked (it did not answer). */
  dockerError?: string;
}

export interface DoctorRequest {
  fix: boolean;
  /** Every volume dockerd lists, with its driver; unset: dockerd's side is not checked. */
  dockerVolumes?: Array<{ name: string; driver: string }>;
  /** The driver name dockerd uses for this hostvol. */
  driver?: string;
  /** Volumes that containers dockerd runs have mounted: their leases are in use, whatever the mount tables show. */
  dockerInUse?: string[];
}

const TRASH = /^\.hostvol-trash-[0-9a-f]{24}$/;

/** The options a volume was created with, as dockerd's DriverOpts (parseOptions gives the same options back). */
export function rawOptions(o: VolumeOptions): Record<string, string> {
  const raw: Record<string, string> = {};
  if (o.path !== undefined) raw.path = o.path;
  if (o.uid !== undefined) raw.uid = String(o.uid);
  if (o.gid !== undefined) raw.gid = String(o.gid);
  if (o.mode !== undefined) raw.mode = `0${o.mode.toString(8)}`;
  if (o.readOnly) raw.ro = 'true';
  if (o.label) raw[o.label] = 'true';
  if (o.onRemove) raw.onremove = o.onRemove;
  return raw;
}

async function orphans(driver: Driver, fix: boolean): Promise<Finding[]> {
  const root = driver.deps.dataRoot;
  const out: Finding[] = [];
  const names = (await fs.promises.readdir(root, { encoding: 'buffer', withFileTypes: true })) as unknown as fs.Dirent<Buffer>[];
  for (const e of names) {
    const shown = e.name.toString('utf8');
    const full = path.join(root, shown);
    // A volume's directory, or one above a volume's (-o path=<data-root>/a/b), is in use; a 'creating'
    // volume is in the table before its directory exists, so a create in flight is never an orphan.
    if (Buffer.from(shown).equals(e.name) && driver.volumes.overlapping(full)) continue;
    if (!e.isDirectory()) continue;
    const staging = STAGING_NAME.exec(shown);
    if (staging) {
      const f = await leftoverStaging(root, e.name, staging[1], fix);
      if (f) out.push(f);
      continue;
    }
    const f: Finding = { kind: 'orphan-directory', subject: full, detail: 'a directory in the data root that no volume uses; move it away or delete it if its data is not needed' };
    if (fix) f.fixed = await removeIfSafe(root, e.name, TRASH.test(shown));
    if (!f.fixed) delete f.fixed;
    out.push(f);
  }
  return out;
}

/**
 * A `.<volume>.hostvol-*` directory: where an import or clone fills a volume before swapping it in.
 * While one runs it holds the directory's flock (staging.ts), so a lock taken here means its process
 * is gone (a crash or kill mid-way): the volume itself was never touched, and the directory is only
 * a partial copy, safe to delete. One whose lock is held is work in progress, not a finding.
 */
async function leftoverStaging(root: string, name: Buffer, volume: string, fix: boolean): Promise<Finding | undefined> {
  const parent = await openBeneath(root, '');
  try {
    const dir = await openChild(parent, name).catch(() => null);
    if (!dir) return undefined; // gone meanwhile: its import finished or failed
    try {
      if (!(await lockStaging(dir))) return undefined;
      const f: Finding = {
        kind: 'interrupted-import', subject: path.join(root, name.toString('utf8')),
        detail: `a partial copy left by an import or clone into volume "${volume}" that was cut short (the volume is as it was); delete it`,
      };
      if (fix) {
        await removeEntry(parent, name);
        await parent.sync();
        f.fixed = 'deleted: no import or clone holds it';
      }
      return f;
    } finally {
      await dir.close();
    }
  } finally {
    await parent.close();
  }
}

/** A trash directory (a delete cut short) is removed; an empty directory is rmdir'ed; anything with data stays. */
async function removeIfSafe(root: string, name: Buffer, trash: boolean): Promise<string | undefined> {
  const parent = await openBeneath(root, '');
  try {
    if (trash) {
      await removeEntry(parent, name);
      return 'deleted: the remains of a volume delete that was cut short';
    }
    try {
      await fs.promises.rmdir(parent.at(name));
      await parent.sync();
      return 'removed: it was empty';
    } catch {
      return undefined; // not empty (or not ours to judge): left
    }
  } finally {
    await parent.close();
  }
}

export async function doctor(driver: Driver, req: DoctorRequest): Promise<DoctorReport> {
  const findings: Finding[] = await orphans(driver, req.fix);
  const volumes = [...driver.volumes.values()].filter((v) => v.state !== 'creating').sort((a, b) => a.name.localeCompare(b.name));
  for (const v of volumes) {
    const st = await fs.promises.lstat(v.path).catch((err: NodeJS.ErrnoException) => err.code);
    if (st === 'ENOENT') {
      findings.push({
        kind: 'missing-directory', subject: v.name,
        detail: `its directory ${v.path} is gone; put the data back there, or remove the volume (docker volume rm ${v.name})`,
      });
    }
  }
  if (req.dockerVolumes) {
    // dockerd lists what each plugin's List answers, so a hostvol volume is missing from its list only
    // when a volume of another driver has the name (dockerd shows one per name), or dockerd could not
    // ask hostvol. Neither is hostvol's to fix: renaming or removing a volume is the operator's call.
    const known = new Map(req.dockerVolumes.map((d) => [d.name, d.driver]));
    for (const v of volumes) {
      const shownAs = known.get(v.name);
      if (v.state !== 'ready' || shownAs === req.driver) continue;
      const create = `docker volume create -d ${req.driver ?? '<driver>'} ${Object.entries(rawOptions(v.options)).map(([k, x]) => `-o ${k}=${x} `).join('')}${v.name}`;
      findings.push({
        kind: 'unknown-to-dockerd', subject: v.name,
        detail: shownAs === undefined
          ? `dockerd does not list it, so docker volume ls and prune miss it; check that dockerd can reach hostvol, then ${create}`
          : `dockerd shows a volume of driver ${shownAs} under this name instead, so docker commands never reach hostvol's; rename or remove one of them`,
      });
    }
  }
  const inUse = new Set(req.dockerInUse ?? []);
  for (const v of volumes.filter((x) => x.leases.size > 0 && !inUse.has(x.name))) {
    const visible = await mountVisible(driver, v);
    if (visible === true) continue;
    if (visible === null) {
      findings.push({ kind: 'cannot-tell', subject: v.name, detail: 'hostvol cannot see containers\' mounts from here (no dockerd process visible); its leases were not checked' });
      continue;
    }
    findings.push(...(await leaseFindings(driver, v.name, req.fix)));
  }
  return { findings };
}

/**
 * Leases of a volume no container has mounted. Stale ones (from an earlier dockerd or hostvol) are
 * what the sweeper drops too: safe. A current one may belong to a container between its Mount and its
 * start, whose mount is not made yet: left, with the command to release it by hand.
 */
async function leaseFindings(driver: Driver, name: string, fix: boolean): Promise<Finding[]> {
  return driver.exclusive(name, async (v) => {
    if ((await mountVisible(driver, v)) !== false) return [];
    const stale = new Set(driver.stale.ids(v));
    const out: Finding[] = [];
    for (const [id] of v.leases) {
      const f: Finding = {
        kind: 'lease-without-mount', subject: v.name,
        detail: `lease ${id}${stale.has(id) ? ' (from an earlier dockerd or hostvol)' : ''} has no visible mount; hostvol release ${v.name} --id ${id} drops it`,
      };
      if (fix && stale.has(id)) f.fixed = 'released: stale, and no container has the volume mounted';
      out.push(f);
    }
    if (fix && stale.size > 0) {
      await driver.stale.drop(v, [...stale], 'hostvol doctor --fix: no container has the volume mounted');
      if (v.leases.size === 0) await driver.releaseBind(v);
    }
    return out;
  });
}
