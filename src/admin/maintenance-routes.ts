// GET /df (hostvol df), POST /prune (hostvol prune), GET /doctor and POST /doctor/fix (hostvol doctor).
import { Router, type Request, type Response } from 'express';
import { InvalidRequestError } from '../errors';
import type { AdminContext } from './context';
import { doctor } from './doctor';
import { prune } from './prune';
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
  r.get('/df', async (req: Request, res: Response) => {
    const driver = await ctx.ready;
    const names = list(req.query.name);
    for (const n of names) lookup(driver, n);
    res.json(await diskUsage(driver, names.length ? names : undefined));
  });
  r.post('/prune', async (req: Request, res: Response) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const labels = body.labels;
    if (labels !== undefined && !(Array.isArray(labels) && labels.every((l) => typeof l === 'string'))) {
      throw new InvalidRequestError('"labels" must be a list of strings');
    }
    res.json(await prune(ctx, {
      all: optional(body, 'all', 'boolean'), dryRun: optional(body, 'dryRun', 'boolean'),
      driver: optional(body, 'driver', 'string'), labels: labels as string[] | undefined,
    }));
  });
  r.get('/doctor', async (req: Request, res: Response) => void res.json(await doctor(ctx, false, list(req.query.driver)[0])));
  r.post('/doctor/fix', async (req: Request, res: Response) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    res.json(await doctor(ctx, true, optional(body, 'driver', 'string')));
  });
  return r;
}
