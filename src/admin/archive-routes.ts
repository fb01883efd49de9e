// Export, import and clone on the admin API. Export streams the archive as the response body (the
// archive engine writes its ring slots straight into the socket), import reads it from the request
// body, clone copies one volume into another. A volume a container has mounted is refused unless the
// client says it took care of that (`live=1`: the CLI pauses the container through dockerd, or was
// told --live): hostvol itself cannot tell a paused writer from a running one.
import { Router, type NextFunction, type Request, type Response } from 'express';
import { cloneTree } from '../archive/clone';
import { parseCompression, type Compression } from '../archive/compress';
import { exportTo } from '../archive/export';
import { importArchive } from '../archive/import';
import { ConflictError } from '../errors';
import type { Volume } from '../volumes/volume';
import type { AdminContext } from './context';
import { lookup } from './volumes-routes';

const CONTENT_TYPES: Record<Compression, string> = { none: 'application/x-tar', gzip: 'application/gzip', zstd: 'application/zstd' };

const flag = (v: unknown): boolean => v === '1' || v === 'true';

function refuseInUse(v: Volume, live: boolean, what: string): void {
  if (live || v.leases.size === 0) return;
  throw new ConflictError(
    `volume "${v.name}" is mounted by ${v.leases.size} container${v.leases.size > 1 ? 's' : ''}; ${what} it with --pause (pauses them meanwhile) or --live (as it is)`,
  );
}

/** An import replaces the directory a mounted container would keep seeing the old copy of. */
function refuseMounted(v: Volume, what: string): void {
  if (v.leases.size > 0) {
    throw new ConflictError(`volume "${v.name}" is mounted by ${v.leases.size} container(s); stop them before ${what} into it (it would keep seeing the old content)`);
  }
}

export function archiveRouter(ctx: AdminContext): Router {
  const r = Router();

  // GET /volumes/:name/export?compress=zstd|gzip|none&live=1
  r.get('/:name/export', async (req: Request<{ name: string }>, res: Response, next: NextFunction) => {
    const driver = await ctx.ready;
    const v = lookup(driver, req.params.name);
    const compress = parseCompression(String(req.query.compress ?? 'none'));
    refuseInUse(v, flag(req.query.live), 'export');
    res.status(200).type(CONTENT_TYPES[compress]);
    const ac = new AbortController();
    req.on('close', () => res.writableFinished || ac.abort());
    try {
      const r2 = await exportTo(v.path, res, { compress, signal: ac.signal, onBytes: (n) => ctx.metrics?.exportBytes.inc(n) });
      ctx.log.info({ volume: v.name, entries: r2.entries, bytes: r2.bytes, warnings: r2.warnings.slice(0, 20) }, 'volume exported');
    } catch (err) {
      next(err);
    }
  });

  // POST /volumes/:name/import?force=1, the archive (plain, gzip or zstd) as the body.
  r.post('/:name/import', async (req: Request<{ name: string }>, res: Response) => {
    const driver = await ctx.ready;
    const v = lookup(driver, req.params.name);
    refuseMounted(v, 'importing');
    req.on('data', (c: Buffer) => ctx.metrics?.importBytes.inc(c.length));
    const ac = new AbortController();
    req.on('close', () => req.complete || ac.abort());
    const result = await importArchive(v.path, req, { force: flag(req.query.force), what: `volume "${v.name}"`, signal: ac.signal });
    ctx.log.info({ volume: v.name, ...result }, 'volume imported');
    res.json({ volume: v.name, ...result });
  });

  // POST /volumes/:name/clone {"to": DST, "live": bool}: DST (an existing, empty hostvol volume) gets a copy.
  r.post('/:name/clone', async (req: Request<{ name: string }>, res: Response) => {
    const driver = await ctx.ready;
    const src = lookup(driver, req.params.name);
    const body = (req.body ?? {}) as { to?: unknown; live?: unknown };
    const dst = lookup(driver, String(body.to ?? ''));
    refuseInUse(src, body.live === true, 'clone');
    refuseMounted(dst, 'cloning');
    const result = await cloneTree(src.path, dst.path, { what: `volume "${dst.name}"` });
    ctx.log.info({ volume: src.name, to: dst.name, entries: result.entries, bytes: result.bytes }, 'volume cloned');
    res.json({ volume: src.name, to: dst.name, ...result });
  });
  return r;
}
