// The HTTP layer, kept thin: decode the body with the endpoint's schema, call the driver, encode
// the reply. Every reply is HTTP 200 with JSON; every failure is {"Err": "..."}.
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Driver } from './driver';
import { HostvolError, describe } from './errors';
import { describeIssues, endpoints, type Route } from './protocol';

export const BODY_LIMIT = '64kb';

type Handler<R extends Route> = (driver: Driver, req: z.infer<(typeof endpoints)[R]['request']>) => unknown;

const handlers: { [R in Route]: Handler<R> } = {
  // Legacy discovery only; managed plugins are never activated but answering is harmless.
  '/Plugin.Activate': () => ({ Implements: ['VolumeDriver'] }),
  '/VolumeDriver.Create': async (d, r) => (await d.create(r.Name, r.Opts), {}),
  '/VolumeDriver.Remove': async (d, r) => (await d.remove(r.Name), {}),
  '/VolumeDriver.Mount': async (d, r) => ({ Mountpoint: await d.mount(r.Name, r.ID) }),
  '/VolumeDriver.Unmount': async (d, r) => (await d.unmount(r.Name, r.ID), {}),
  '/VolumeDriver.Path': (d, r) => ({ Mountpoint: d.path(r.Name) }),
  '/VolumeDriver.Get': (d, r) => ({ Volume: d.get(r.Name) }),
  '/VolumeDriver.List': (d) => ({ Volumes: d.list() }),
  // Scope local: the directories are on this host; dockerd asks once (legacy) or before every call (managed).
  '/VolumeDriver.Capabilities': () => ({ Capabilities: { Scope: 'local' } }),
};

/** `ready` resolves once the store is loaded; requests that arrive earlier wait rather than see no volumes. */
export function createApp(ready: Promise<Driver>, log: Logger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // dockerd sends no Content-Type, and an empty body when it retries: parse whatever arrives as JSON.
  app.use(express.json({ type: () => true, limit: BODY_LIMIT }));

  for (const route of Object.keys(endpoints) as Route[]) {
    const { request } = endpoints[route];
    const handler = handlers[route] as Handler<Route>;
    app.post(route, async (req: Request, res: Response) => {
      const started = performance.now();
      let reply: unknown;
      try {
        const parsed = request.safeParse(req.body ?? {});
        if (!parsed.success) throw new HostvolError(`${route}: ${describeIssues(parsed.error)}`);
        reply = await handler(await ready, parsed.data as never);
      } catch (err) {
        reply = { Err: describe(err) };
        const level = err instanceof HostvolError ? 'warn' : 'error';
        log[level]({ route, name: (req.body as { Name?: unknown })?.Name, err: describe(err) }, 'request failed');
      }
      res.json(reply);
      if (log.isLevelEnabled('debug')) {
        log.debug({ route, body: req.body, reply, ms: +(performance.now() - started).toFixed(3) }, 'request');
      }
    });
  }

  app.use((req: Request, res: Response) => {
    res.json({ Err: `unknown endpoint ${req.method} ${req.path}; hostvol serves POST ${Object.keys(endpoints).join(', ')}` });
  });
  app.use((err: Error & { type?: string }, req: Request, res: Response, _next: NextFunction) => {
    const message =
      err.type === 'entity.too.large'
        ? `request body is larger than the ${BODY_LIMIT} limit`
        : err.type === 'entity.parse.failed'
          ? `request body is not valid JSON: ${err.message}`
          : `bad request: ${err.message}`;
    log.warn({ route: req.path, err: message }, 'request refused');
    res.json({ Err: message });
  });
  return app;
}
