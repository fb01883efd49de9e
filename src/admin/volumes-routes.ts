// GET /volumes (hostvol ls) and GET /volumes/:name (hostvol inspect): what hostvol holds for each
// volume, with what only the host can tell (is a mount visible, how big is it). What only dockerd can
// tell (which containers use it) the CLI asks dockerd itself: a managed plugin cannot reach dockerd.
// In a cluster, the leases shown are those of every node, each with its node (holders.ts).
import { Router, type Request, type Response } from 'express';
import { toHost } from '../volumes/hostpaths';
import type { Driver } from '../volumes/driver';
import { mountVisible, type LeaseView, type Visibility } from '../volumes/leases';
import { checkName, mountpoint, onRemove, type Volume } from '../volumes/volume';
import { NotFoundError } from '../errors';
import type { AdminContext } from './context';
import { holders, nodesOf } from './holders';
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
  /** Mount leases on every node. */
  leases: number;
  /** The nodes holding them, sorted. */
  nodes: string[];
  /** Whether removing the volume deletes its data (onremove, or hostvol made the directory). */
  deletesData: boolean;
}

export interface VolumeDetail extends Omit<VolumeSummary, 'leases'> {
  /** On every node, sorted by node and Mount ID. */
  leases: LeaseView[];
  /** This node's name: the node `mountVisible` and the `stale` flags speak of. */
  node: string;
  /** Whether a container on this node has the volume mounted. */
  mountVisible: Visibility;
  /** Set when other nodes' leases could not be read (etcd unreachable): why; `leases` then has this node's only. */
  othersUnknown?: string;
  size: Omit<VolumeSize, 'name' | 'path'>;
}

export function summary(driver: Driver, v: Volume, leases: LeaseView[]): VolumeSummary {
  return {
    name: v.name,
    hostPath: toHost(driver.deps.hostPaths, v.path),
    mountpoint: mountpoint(v, driver.deps.layout),
    options: v.options,
    createdBy: v.createdBy,
    createdAt: v.createdAt,
    state: v.state,
    leases: leases.length,
    nodes: nodesOf(leases),
    deletesData: onRemove(v) === 'delete',
  };
}

/** A volume by name as the admin API sees it: 'creating' ones do not exist yet. */
export function lookup(driver: Driver, name: string): Volume {
  checkName(name);
  const v = driver.volumes.get(name);
  if (!v || v.state === 'creating') throw new NotFoundError(name);
  return v;
}

async function detail(driver: Driver, v: Volume): Promise<VolumeDetail> {
  const [visible, size, held] = await Promise.all([mountVisible(driver, v), measureVolume(driver, v), holders(driver, v.name)]);
  const { name: _n, path: _p, ...sizeOnly } = size;
  const leases = held.byVolume.get(v.name) ?? [];
  return {
    ...summary(driver, v, leases),
    leases,
    node: driver.deps.store.node,
    mountVisible: visible,
    ...(held.othersUnknown ? { othersUnknown: held.othersUnknown } : {}),
    size: sizeOnly,
  };
}

export function volumesRouter(ctx: AdminContext): Router {
  const r = Router();
  r.get('/', async (_req: Request, res: Response) => {
    const driver = await ctx.ready;
    // One read of every lease (not one per volume); when other nodes' cannot be read, ls still answers with this node's.
    const { byVolume } = await holders(driver);
    const out = [...driver.volumes.values()].filter((v) => v.state !== 'creating').map((v) => summary(driver, v, byVolume.get(v.name) ?? []));
    res.json(out.sort((a, b) => a.name.localeCompare(b.name)));
  });
  r.get('/:name', async (req: Request<{ name: string }>, res: Response) => {
    const driver = await ctx.ready;
    res.json(await detail(driver, lookup(driver, req.params.name)));
  });
  return r;
}
