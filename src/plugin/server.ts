// The plugin socket's request path, kept thin and single: read the body (raw-body), parse it as
// JSON, check it with the endpoint's zod schema, call the driver, encode the reply. Every reply is
// HTTP 200 with JSON; every failure is {"Err": "..."}. dockerd's requests are small and few kinds,
// so plain node:http serves them; Express earns its keep on the admin socket instead.
import type * as http from 'node:http';
import getRawBody from 'raw-body';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { HostvolError, NotFoundError, describe } from '../errors';
import type { Driver, VolumeView } from '../volumes/driver';
import { describeIssues, endpoints, type Route } from './protocol';

export const BODY_LIMIT = '64kb';

/** A reply already encoded as JSON: sent as it is. */
class Encoded {
  constructor(readonly body: Buffer) {}
}

type Reply<R extends Route> = z.input<(typeof endpoints)[R]['response']>;
type Handler<R extends Route> = (driver: Driver, req: z.infer<(typeof endpoints)[R]['request']>) => Reply<R> | Encoded | Promise<Reply<R>>;

/**
 * dockerd lists every volume on `docker volume ls` and on every start; with 100k volumes the reply
 * is megabytes of JSON. It is encoded once per change of the volume table, not once per request:
 * repeated Lists then cost a lookup, and do not leave megabytes of garbage each.
 */
let listCache: { driver: Driver; version: number; reply: Encoded } | undefined;
function listReply(d: Driver): Encoded {
  if (listCache?.driver !== d || listCache.version !== d.volumes.version) {
    const reply: Reply<'/VolumeDriver.List'> = { Volumes: d.list().map((v) => ({ Name: v.name, Mountpoint: v.mountpoint })) };
    listCache = { driver: d, version: d.volumes.version, reply: new Encoded(Buffer.from(JSON.stringify(reply))) };
  }
  return listCache.reply;
}

/**
 * Get's reply, encoded once per view: the driver hands out the same view object until something Get
 * shows changes (volumes/view.ts), and dockerd asks Get before nearly every call that names a volume.
 */
const getReplies = new WeakMap<VolumeView, Encoded>();
function getReply(v: VolumeView): Encoded {
  let reply = getReplies.get(v);
  if (reply === undefined) {
    const r: Reply<'/VolumeDriver.Get'> = { Volume: { Name: v.name, Mountpoint: v.mountpoint, CreatedAt: v.createdAt, Status: v.status } };
    reply = new Encoded(Buffer.from(JSON.stringify(r)));
    getReplies.set(v, reply);
  }
  return reply;
}

const handlers: { [R in Route]: Handler<R> } = {
  // Legacy discovery only; managed plugins are never activated but answering is harmless.
  '/Plugin.Activate': async (d) => (await d.activated(), { Implements: ['VolumeDriver'] }),
  '/VolumeDriver.Create': async (d, r) => (await d.create(r.Name, r.Opts), {}),
  '/VolumeDriver.Remove': async (d, r) => (await d.remove(r.Name), {}),
  '/VolumeDriver.Mount': async (d, r) => ({ Mountpoint: await d.mount(r.Name, r.ID) }),
  '/VolumeDriver.Unmount': async (d, r) => (await d.unmount(r.Name, r.ID), {}),
  '/VolumeDriver.Path': (d, r) => ({ Mountpoint: d.path(r.Name) }),
  '/VolumeDriver.Get': (d, r) => getReply(d.get(r.Name)),
  '/VolumeDriver.List': (d) => listReply(d),
  // Scope local: the directories are on this host; global in cluster mode, where every node shares one
  // set of volumes (a store in etcd). dockerd asks once (legacy) or before every call (managed).
  '/VolumeDriver.Capabilities': (d) => ({ Capabilities: { Scope: d.deps.store.scope } }),
};

const byLowerPath = new Map((Object.keys(endpoints) as Route[]).map((r) => [r.toLowerCase(), r]));

/** POST only, case-insensitive, one optional trailing slash, any query ignored (as Express matched them). */
function routeOf(req: http.IncomingMessage): Route | undefined {
  if (req.method !== 'POST' || req.url === undefined) return undefined;
  const q = req.url.indexOf('?');
  let p = q === -1 ? req.url : req.url.slice(0, q);
  if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return byLowerPath.get(p.toLowerCase());
}

function sendJson(res: http.ServerResponse, reply: unknown): void {
  const body = reply instanceof Encoded ? reply.body : Buffer.from(JSON.stringify(reply));
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length });
  res.end(body);
}

/** dockerd sends no Content-Type and no encoding; anything else must at least be plain UTF-8 JSON. */
function bodyProblem(req: http.IncomingMessage): string | undefined {
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
    return `request body with content-encoding "${encoding}" is not supported; send it uncompressed`;
  }
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(req.headers['content-type'] ?? '')?.[1];
  if (charset !== undefined && !/^utf-?8$/i.test(charset)) return `request body charset "${charset}" is not supported; send UTF-8`;
  return undefined;
}

function parseBody(text: string): unknown {
  const trimmed = text.trim();
  if (trimmed === '') return {}; // dockerd retries with an empty body after a dropped connection
  try {
    return JSON.parse(trimmed);
  } catch (err) {
    throw new HostvolError(`request body is not valid JSON: ${describe(err)}`);
  }
}

/** Told of every request routed to an endpoint once it is answered (the metrics hook). */
export type RequestObserver = (route: Route, outcome: 'ok' | 'error', seconds: number) => void;

/**
 * The request listener. `ready` resolves once the store is loaded; requests that arrive earlier wait
 * rather than see no volumes. Get, List and Path answer from memory in the same tick.
 */
export function createApp(ready: Promise<Driver>, log: Logger, observe?: RequestObserver): http.RequestListener {
  let driver: Driver | undefined;
  ready.then((d) => (driver = d), () => undefined);

  const serve = (route: Route, body: unknown, res: http.ServerResponse): Promise<void> | void => {
    const started = performance.now();
    const answer = (reply: unknown): void => {
      sendJson(res, reply);
      const failed = !(reply instanceof Encoded) && typeof (reply as { Err?: unknown })?.Err === 'string';
      observe?.(route, failed ? 'error' : 'ok', (performance.now() - started) / 1000);
      if (log.isLevelEnabled('debug')) {
        log.debug({ route, body, reply: reply instanceof Encoded ? JSON.parse(reply.body.toString()) : reply, ms: +(performance.now() - started).toFixed(3) }, 'request');
      }
    };
    const failed = (err: unknown): { Err: string } => {
      // dockerd asks Get for every name before creating it: a miss there is normal traffic.
      const level = err instanceof NotFoundError && route === '/VolumeDriver.Get' ? 'debug' : err instanceof HostvolError ? 'warn' : 'error';
      log[level]({ route, name: (body as { Name?: unknown })?.Name, err: describe(err) }, 'request failed');
      return { Err: describe(err) };
    };
    let reply: unknown;
    try {
      const parsed = endpoints[route].request.safeParse(body ?? {});
      if (!parsed.success) throw new HostvolError(`${route}: ${describeIssues(parsed.error)}`);
      const handler = handlers[route] as Handler<Route>;
      reply = driver ? handler(driver, parsed.data as never) : ready.then((d) => handler(d, parsed.data as never));
    } catch (err) {
      return answer(failed(err));
    }
    if (reply instanceof Promise) return reply.then(answer, (err: unknown) => answer(failed(err)));
    answer(reply);
  };

  const refuse = (req: http.IncomingMessage, res: http.ServerResponse, message: string): void => {
    log.warn({ route: req.url, err: message }, 'request refused');
    sendJson(res, { Err: message });
  };

  return (req, res) => {
    const route = routeOf(req);
    const problem = bodyProblem(req);
    // The body is read (and dropped) even for requests that are refused, so the connection stays usable.
    // Read as bytes and decoded by Buffer: raw-body's `encoding` would build an iconv-lite decoder per
    // request (~1.5 % of the server's CPU under Get load, profiled), for the one charset accepted here.
    getRawBody(req, { length: req.headers['content-length'], limit: BODY_LIMIT }, (err, raw) => {
      try {
        if (err) {
          const e = err as Error & { type?: string };
          const why = e.type === 'entity.too.large' ? `request body is larger than the ${BODY_LIMIT} limit` : `bad request: ${e.message}`;
          return refuse(req, res, why);
        }
        if (route === undefined) {
          return refuse(req, res, `unknown endpoint ${req.method} ${req.url}; hostvol serves POST ${Object.keys(endpoints).join(', ')}`);
        }
        if (problem) return refuse(req, res, problem);
        let body: unknown;
        try {
          body = parseBody(raw.toString('utf8'));
        } catch (e) {
          return refuse(req, res, describe(e));
        }
        serve(route, body, res)?.catch((e: unknown) => log.error({ route, err: describe(e) }, 'request failed after its reply was sent'));
      } catch (e) {
        if (!res.headersSent) refuse(req, res, describe(e));
      }
    });
  };
}
