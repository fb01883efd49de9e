// The admin API: an Express 5 app on hostvol's second, root-only Unix socket. JSON resources for
// volumes, leases, sizes and repairs, Prometheus metrics, and room for more routers (the archive
// routes stream tar). Every failure is {"Err": "..."}, worded as the plugin's Errs (describe()), with
// an HTTP status from the error's type so clients can tell a typo from a conflict from a fault.
import express, { type ErrorRequestHandler, type Request, type Response } from 'express';
import {
  ConflictError, HostvolError, InvalidOptionError, InvalidRequestError, NotFoundError, PathError, describe,
} from '../errors';
import type { AdminContext } from './context';
import { archiveRouter } from './archive-routes';
import { DockerUnreachableError } from './docker';
import { leasesRouter } from './leases-routes';
import { maintenanceRouter } from './maintenance-routes';
import { volumesRouter } from './volumes-routes';

/** Admin request bodies are option lists and flags: small. Archives stream and never pass through the JSON parser. */
const JSON_LIMIT = '256kb';

/** The HTTP status for a thrown value: the request's fault (4xx) or ours (5xx). */
export function statusOf(err: unknown): number {
  if (err instanceof NotFoundError) return 404;
  if (err instanceof ConflictError) return 409;
  if (err instanceof InvalidRequestError || err instanceof InvalidOptionError || err instanceof PathError) return 400;
  if (err instanceof DockerUnreachableError) return 503;
  const status = (err as { status?: unknown; statusCode?: unknown }).status ?? (err as { statusCode?: unknown }).statusCode;
  // Express's own errors (a malformed JSON body: 400, too large: 413) carry their status.
  if (typeof status === 'number' && status >= 400 && status < 500) return status;
  return 500;
}

export function createAdminApp(ctx: AdminContext): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('json spaces', 0);
  app.use(express.json({ limit: JSON_LIMIT }));

  app.get('/metrics', async (_req: Request, res: Response) => {
    res.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });

  // ---- Routers: each takes the AdminContext and is mounted here, and only here. ----
  // Another module's router is one entry in extraRouters() below: the archive routes (export, import,
  // clone) go there as ['/volumes', archiveRouter(ctx)], beside the JSON ones (GET /volumes/:name
  // matches one path segment only, so /volumes/:name/export reaches them).
  app.use('/volumes', volumesRouter(ctx));
  app.use('/leases', leasesRouter(ctx));
  app.use('/', maintenanceRouter(ctx));
  for (const [prefix, router] of extraRouters(ctx)) app.use(prefix, router);
  // ---- end of routers ----

  app.use((req: Request, res: Response) => {
    res.status(404).json({ Err: `unknown admin endpoint ${req.method} ${req.path}; is this hostvol version older than the CLI?` });
  });
  const onError: ErrorRequestHandler = (err, req, res, _next) => {
    const status = statusOf(err);
    const level = status >= 500 && !(err instanceof HostvolError) ? 'error' : 'warn';
    ctx.log[level]({ route: `${req.method} ${req.path}`, status, err: describe(err) }, 'admin request failed');
    if (res.headersSent) return void res.destroy(); // a stream broke half-way: the client sees it cut, not a second reply
    res.status(status).json({ Err: describe(err) });
  };
  app.use(onError);
  return app;
}

/**
 * Routers contributed by other modules (the archive routes). Listed here so that adding one is a
 * one-line change in one place: `['/volumes', archiveRouter(ctx)]`.
 */
function extraRouters(ctx: AdminContext): Array<[string, express.Router]> {
  return [['/volumes', archiveRouter(ctx)]];
}

