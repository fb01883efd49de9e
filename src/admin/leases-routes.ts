// GET /leases[/:name] (hostvol leases) and POST /leases/:name/release (hostvol release). In a cluster
// the leases of every node are listed, each with its node (holders.ts); a release is of this node's.
import { Router, type Request, type Response } from 'express';
import { InvalidRequestError } from '../errors';
import { mountVisible, release, type LeaseView, type Visibility } from '../volumes/leases';
import type { AdminContext } from './context';
import { holders } from './holders';
import { lookup } from './volumes-routes';

export interface VolumeLeases {
  volume: string;
  /** This node's name: the node `generation`, `mountVisible` and the `stale` flags speak of. */
  node: string;
  /** The generation of the dockerd hostvol serves now: leases from an older one are stale. */
  generation: number;
  /** Whether a container on this node has the volume mounted (null: cannot tell, or not known here yet). */
  mountVisible: Visibility;
  /** On every node, sorted by node and Mount ID. */
  leases: LeaseView[];
  /** Set when other nodes' leases could not be read (etcd unreachable): why; `leases` then has this node's only. */
  othersUnknown?: string;
}

export function leasesRouter(ctx: AdminContext): Router {
  const r = Router();
  const forVolumes = async (name?: string): Promise<VolumeLeases[]> => {
    const driver = await ctx.ready;
    if (name !== undefined) lookup(driver, name);
    const held = await holders(driver, name);
    // Every volume some node holds, also one this node's table does not know yet (its watch lags).
    const names = name === undefined ? [...held.byVolume.keys()].sort() : [name];
    const out: VolumeLeases[] = [];
    for (const n of names) {
      const v = driver.volumes.get(n);
      out.push({
        volume: n,
        node: driver.deps.store.node,
        generation: driver.stale.generation,
        mountVisible: v ? await mountVisible(driver, v) : null,
        leases: held.byVolume.get(n) ?? [],
        ...(held.othersUnknown ? { othersUnknown: held.othersUnknown } : {}),
      });
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
