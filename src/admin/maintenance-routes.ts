// GET /info (what a client needs to know of this daemon), GET /df (hostvol df), POST /doctor (hostvol doctor).
import * as path from 'node:path';
import { Router, type Request, type Response } from 'express';
import { InvalidRequestError } from '../errors';
import type { AdminContext } from './context';
import { doctor } from './doctor';
import { diskUsage } from './sizes';
import { lookup } from './volumes-routes';

const list = (q: unknown): string[] => (q === undefined ? [] : Array.isArray(q) ? q.map(String) : [String(q)]);

function optional<T>(body: Record<string, unknown>, key: string, type: 'boolean' | 'string'): T | undefined {
  const v = body[key];
  if (v !== undefined && typeof v !== type) throw new InvalidRequestError(`"${key}" must be a ${type}`);
  return v as T | undefined;
}

export function maintenanceRouter(ctx: AdminContext): Router {
  const r = Router();
  r.get('/info', async (_req: Request, res: Response) => {
    const driver = await ctx.ready;
    const managed = driver.deps.layout.managed;
    res.json({
      version: require('../../package.json').version as string,
      managed,
      // dockerd names a legacy plugin after its socket; a managed one by the name it was installed under, unknown in here.
      driver: managed ? null : path.basename(ctx.config.socket).replace(/\.sock$/, ''),
      generation: driver.stale.generation,
      dataRoot: driver.deps.dataRoot,
      volumes: driver.volumes.size,
    });
  });
  r.get('/df', async (req: Request, res: Response) => {
    const driver = await ctx.ready;
    const names = list(req.query.name);
    for (const n of names) lookup(driver, n);
    res.json(await diskUsage(driver, names.length ? names : undefined));
  });
  r.post('/doctor', async (req: Request, res: Response) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const vols = body.dockerVolumes;
    const entry = (d: unknown) => typeof (d as { name?: unknown })?.name === 'string' && typeof (d as { driver?: unknown }).driver === 'string';
    if (vols !== undefined && !(Array.isArray(vols) && vols.every(entry))) {
      throw new InvalidRequestError('"dockerVolumes" must be a list of {"name", "driver"} as dockerd lists them');
    }
    const busy = body.dockerInUse;
    if (busy !== undefined && !(Array.isArray(busy) && busy.every((n) => typeof n === 'string'))) {
      throw new InvalidRequestError('"dockerInUse" must be a list of volume names');
    }
    res.json(await doctor(await ctx.ready, {
      dockerInUse: busy as string[] | undefined,
      fix: optional<boolean>(body, 'fix', 'boolean') ?? false,
      dockerVolumes: vols as Array<{ name: string; driver: string }> | undefined,
      driver: optional<string>(body, 'driver', 'string'),
    }));
  });
  return r;
}
