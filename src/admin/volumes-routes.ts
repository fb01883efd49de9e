// GET /volumes (hostvol ls) and GET /volumes/:name (hostvol inspect): what hostvol holds for each
// volume, with what only the host can tell (is a mount visible, how big is it) and what only dockerd
// can (which containers use it). dockerd being away makes inspect say so, not fail.
import { Router, type Request, type Response } from 'express';
import { describe } from '../errors';
import { toHost } from '../volumes/hostpaths';
import type { Driver } from '../volumes/driver';
import { leasesOf, mountVisible, type LeaseView, type Visibility } from '../volumes/leases';
import { checkName, mountpoint, type Volume } from '../volumes/volume';
import { NotFoundError } from '../errors';
import type { AdminContext } from './context';
import type { ContainerUse } from './docker';
import { measureVolume, type VolumeSize } from './sizes';

export interface VolumeSummary {
  name: string;
  /** The data directory as the host sees it. */
  hostPath: string;
  mountpoint: string;
  options: Volume['options'];
  createdBy: Volume['createdBy'];
  createdAt: string;
  state: Volume['state'];
  leases: number;
}

export interface VolumeDetail extends Omit<VolumeSummary, 'leases'> {
  leases: LeaseView[];
  mountVisible: Visibility;
  /** From dockerd; `containersError` says why they are missing when dockerd could not be asked. */
  containers?: ContainerUse[];
  containersError?: string;
  size: Omit<VolumeSize, 'name' | 'path'>;
}

export function summary(driver: Driver, v: Volume): VolumeSummary {
  return {
    name: v.name,
    hostPath: toHost(driver.deps.hostPaths, v.path),
    mountpoint: mountpoint(v, driver.deps.layout),
    options: v.options,
    createdBy: v.createdBy,
    createdAt: v.createdAt,
    state: v.state,
    leases: v.leases.size,
  };
}

/** A volume by name as the admin API sees it: 'creating' ones do not exist yet. */
export function lookup(driver: Driver, name: string): Volume {
  checkName(name);
  const v = driver.volumes.get(name);
  if (!v || v.state === 'creating') throw new NotFoundError(name);
  return v;
}

async function detail(ctx: AdminContext, driver: Driver, v: Volume): Promise<VolumeDetail> {
  const [visible, containers, size] = await Promise.all([
    mountVisible(driver, v),
    ctx.docker.containersUsing(v.name, `hostvol inspect ${v.name}`).then((c) => ({ c }), (err: unknown) => ({ e: describe(err) })),
    measureVolume(driver, v),
  ]);
  const { name: _n, path: _p, ...sizeOnly } = size;
  return {
    ...summary(driver, v),
    leases: leasesOf(driver, v),
    mountVisible: visible,
    ...('c' in containers ? { containers: containers.c } : { containersError: containers.e }),
    size: sizeOnly,
  };
}

export function volumesRouter(ctx: AdminContext): Router {
  const r = Router();
  r.get('/', async (_req: Request, res: Response) => {
    const driver = await ctx.ready;
    const out = [...driver.volumes.values()].filter((v) => v.state !== 'creating').map((v) => summary(driver, v));
    res.json(out.sort((a, b) => a.name.localeCompare(b.name)));
  });
  r.get('/:name', async (req: Request<{ name: string }>, res: Response) => {
    const driver = await ctx.ready;
    res.json(await detail(ctx, driver, lookup(driver, req.params.name)));
  });
  return r;
}
