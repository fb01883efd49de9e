// The HTTP layer, kept thin: decode the body with the endpoint's schema, call the driver, encode
// the reply. Every reply is HTTP 200 with JSON; every failure is {"Err": "..."}. The requests dockerd
// sends take a direct node:http path; anything else goes through Express, with the same results
// (the path costs and what each change bought are in BENCHMARKS.md).
import type * as http from 'node:http';
import type { Express, NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Driver } from '../volumes/driver';
import { HostvolError, describe } from '../errors';
import { describeIssues, endpoints, type Route } from './protocol';

export const BODY_LIMIT = '64kb';
const LIMIT_BYTES = 64 * 1024; // what express.json makes of BODY_LIMIT

type Handler<R extends Route> = (driver: Driver, req: z.infer<(typeof endpoints)[R]['request']>) => unknown;

const handlers: { [R in Route]: Handler<R> } = {
  // Legacy discovery only; managed plugins are never activated but answering is harmless.
  '/Plugin.Activate': (d) => (d.activated(), { Implements: ['VolumeDriver'] }),
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

const byLowerPath = new Map((Object.keys(endpoints) as Route[]).map((r) => [r.toLowerCase(), r]));

function routeOf(path: string): Route | undefined {
  const p = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  return byLowerPath.get(p.toLowerCase());
}

/**
 * Whether readPlain can read this body exactly as express.json would: the shape dockerd sends (no
 * Content-Type, not chunked, not compressed, Content-Length within the limit, or no body at all).
 * Anything else (charsets, gzip, chunked, oversized) goes through express.json, which refuses an
 * oversized body from its Content-Length, before reading it.
 */
function plainBody(req: http.IncomingMessage): boolean {
  const h = req.headers;
  if (h['content-type'] !== undefined || h['transfer-encoding'] !== undefined) return false;
  const encoding = h['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return false;
  const length = h['content-length'];
  return length === undefined || Number(length) <= LIMIT_BYTES;
}

type BodyError = Error & { type: string };
const bodyError = (err: Error, type: string): BodyError => Object.assign(err, { type });

/** Reads and parses a plain body as express.json({strict: true}) does; `undefined` when there is none. */
function readPlain(req: http.IncomingMessage, done: (err: BodyError | undefined, body?: unknown) => void): void {
  if (req.headers['content-length'] === undefined) return done(undefined, undefined);
  const chunks: Buffer[] = [];
  let finished = false;
  const finish = (err: BodyError | undefined, body?: unknown) => {
    if (finished) return;
    finished = true;
    done(err, body);
  };
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.once('end', () => {
    let body: unknown;
    try {
      body = parseJson(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    } catch (err) {
      return finish(bodyError(err as Error, 'entity.parse.failed'));
    }
    finish(undefined, body);
  });
  req.once('aborted', () => finish(bodyError(new Error('request aborted'), 'request.aborted')));
  req.once('error', (err) => finish(bodyError(err, 'request.aborted')));
}

const FIRST_CHAR = /^[\x20\x09\x0a\x0d]*([^\x20\x09\x0a\x0d])/;

/** body-parser's strict JSON: the decoded text without a BOM, {} when empty, an object or array. */
function parseJson(raw: Buffer): unknown {
  let text = raw.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.length === 0) return {};
  const first = FIRST_CHAR.exec(text)?.[1];
  if (first !== '{' && first !== '[') throw strictError(text, first);
  return JSON.parse(text);
}

/** The message body-parser gives a body that is not an object or array, e.g. `Unexpected token 'n', "null" is not valid JSON`. */
function strictError(text: string, first: string | undefined): Error {
  const index = text.indexOf(first as string);
  const partial = index === -1 ? '' : text.substring(0, index) + '#'.repeat(text.length - index);
  try {
    JSON.parse(partial);
    return new SyntaxError('strict violation');
  } catch (e) {
    const err = e as Error;
    err.message = err.message.replace(/#+/g, (p) => text.substring(index, index + p.length));
    return err;
  }
}

/** What res.json sends (same headers, same bytes), without its content-type and charset negotiation. */
function sendJson(res: http.ServerResponse, reply: unknown): void {
  const body = Buffer.from(JSON.stringify(reply));
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length });
  res.end(body);
}

/**
 * The request path as Express's req.path gives it, for the plain request-targets dockerd sends;
 * undefined for anything parseurl would treat specially (those requests go through Express).
 */
function pathOf(url: string | undefined): string | undefined {
  if (url === undefined || url.charCodeAt(0) !== 0x2f || /[\t\n\f\r #\u00a0\ufeff]/.test(url)) return undefined;
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/**
 * The request listener. dockerd's requests (POST to a plugin route, plain body) are answered
 * directly on node:http: Express's per-request set-up (it swaps the prototypes of req and res) costs
 * more than the rest of a Get together (bench/, BENCHMARKS.md). Every other request goes through the
 * Express app, which serves it exactly as before. `ready` resolves once the store is loaded;
 * requests that arrive earlier wait rather than see no volumes.
 */
export function createApp(ready: Promise<Driver>, log: Logger): http.RequestListener {
  let driver: Driver | undefined;
  ready.then((d) => (driver = d), () => undefined);

  /**
   * Decodes, calls the driver, answers. Once the store is loaded, a driver call that answers at
   * once (Get, List, Path) is answered in the same tick, without promises; the others are awaited.
   */
  const serve = (route: Route, body: unknown, res: http.ServerResponse): Promise<void> | void => {
    const started = performance.now();
    const answer = (reply: unknown): void => {
      sendJson(res, reply);
      if (log.isLevelEnabled('debug')) {
        log.debug({ route, body, reply, ms: +(performance.now() - started).toFixed(3) }, 'request');
      }
    };
    const failed = (err: unknown): { Err: string } => {
      const level = err instanceof HostvolError ? 'warn' : 'error';
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

  const refuse = (path: string, err: Error & { type?: string }, res: http.ServerResponse): void => {
    const message =
      err.type === 'entity.too.large'
        ? `request body is larger than the ${BODY_LIMIT} limit`
        : err.type === 'entity.parse.failed'
          ? `request body is not valid JSON: ${err.message}`
          : `bad request: ${err.message}`;
    log.warn({ route: path, err: message }, 'request refused');
    sendJson(res, { Err: message });
  };

  // Built on the first request that needs it: loading Express is ~100 ms of start-up that
  // dockerd's requests never use (bench/: start-up with 100k volumes).
  let app: Express | undefined;
  const expressApp = (): Express => {
    if (app) return app;
    const express = require('express') as typeof import('express');
    app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    // dockerd sends no Content-Type, and an empty body when it retries: parse whatever arrives as JSON.
    app.use(express.json({ type: () => true, limit: BODY_LIMIT }));
    // One dispatch middleware and a Map lookup instead of one app.post per endpoint. Matching is what
    // Express did for those routes: POST only, case-insensitive, one optional trailing slash.
    app.use((req: Request, res: Response, next: NextFunction) => {
      const route = req.method === 'POST' ? routeOf(req.path) : undefined;
      if (route === undefined) return next();
      return serve(route, req.body, res);
    });
    app.use((req: Request, res: Response) => {
      res.json({ Err: `unknown endpoint ${req.method} ${req.path}; hostvol serves POST ${Object.keys(endpoints).join(', ')}` });
    });
    app.use((err: Error & { type?: string }, req: Request, res: Response, _next: NextFunction) => refuse(req.path, err, res));
    return app;
  };

  return (req, res) => {
    const path = req.method === 'POST' && plainBody(req) ? pathOf(req.url) : undefined;
    const route = path === undefined ? undefined : routeOf(path);
    if (route === undefined) return void expressApp()(req, res);
    // Only if writing the reply itself failed; Express would have passed this to the handler above.
    const broken = (e: Error) => {
      if (!res.headersSent) refuse(path!, e, res);
      else log.error({ route: path, err: describe(e) }, 'request failed after its reply was sent');
    };
    readPlain(req, (err, body) => {
      try {
        const pending = err ? refuse(path!, err, res) : serve(route, body, res);
        pending?.catch(broken);
      } catch (e) {
        broken(e as Error);
      }
    });
  };
}
