// GET /leases[/:name] (hostvol leases) and POST /leases/:name/release (hostvol release).
import { Router, type Request, type Response } from 'express';
import { InvalidRequestError } from '../errors';
import { leasesOf, mountVisible, release, type LeaseView, type Visibility } from '../volumes/leases';
import type { AdminContext } from './context';
import { lookup } from './volumes-routes';

export interface VolumeLeases {
  volume: string;
  /** The generation of the dockerd hostvol serves now: leases from an older one are stale. */
  generation: number;
  mountVisible: Visibility;
  leases: LeaseView[];
}

export function leasesRouter(ctx: AdminContext): Router {
  const r = Router();
  const forVolumes = async (name?: string): Promise<VolumeLeases[]> => {
    const driver = await ctx.ready;
    const vols = name === undefined ? [...driver.volumes.values()].filter((v) => v.leases.size > 0) : [lookup(driver, name)];
    const out: VolumeLeases[] = [];
    for (const v of vols.sort((a, b) => a.name.localeCompare(b.name))) {
      out.push({ volume: v.name, generation: driver.stale.generation, mountVisible: await mountVisible(driver, v), leases: leasesOf(driver, v) });
    }
    return out;
  };
  r.get('/', async (_req: Request, res: Response) => void res.json(await forVolumes()));
  r.get('/:name', async (req: Request<{ name: string }>, res: Response) => void res.json(await forVolumes(req.params.name)));
  r.post('/:name/release', async (req: Request<{ name: string }>, res: Response) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const bad = (k: string, t: string) => new InvalidRequestError(`release: "${k}" must be a ${t}`);
    if (body.id !== undefined && typeof body.id !== 'string') throw bad('id', 'string');
    for (const k of ['stale', 'force']) if (body[k] !== undefined && typeof body[k] !== 'boolean') throw bad(k, 'boolean');
    const driver = await ctx.ready;
    res.json(await release(driver, req.params.name, { id: body.id as string | undefined, stale: body.stale as boolean, force: body.force as boolean }));
  });
  return r;
}
