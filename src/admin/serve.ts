// The admin API's listeners: the root-only Unix socket (mode 0600, from the first instant: see
// listenUnix) and, when asked for, a TCP listener that serves nothing but GET /metrics, so a
// Prometheus on the network never reaches an endpoint that changes anything. The daemon starts them
// once the plugin socket is serving, and Express and undici are loaded only at the first admin request.
import * as http from 'node:http';
import { HostvolError } from '../errors';
import { closeServer, listenUnix } from '../plugin/listen';
import type { AdminContext } from './context';

export interface AdminListeners {
  /** Absent when the admin socket could not be served (logged; the plugin socket is served regardless). */
  admin?: http.Server;
  /** Absent without a metrics address, or when it could not be listened on (logged, likewise). */
  metrics?: http.Server;
  close(): Promise<void>;
}

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` (every address); a port of 0 picks a free one. */
export function parseAddress(spec: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(spec);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new HostvolError(`--metrics-address "${spec}" is not HOST:PORT (e.g. 127.0.0.1:9105 or [::1]:9105)`);
  return { host: m[1] ?? (m[2] || undefined), port };
}

function metricsOnly(ctx: AdminBase): http.RequestListener {
  return (req, res) => {
    const route = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || route !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ Err: 'this listener serves only GET /metrics' }));
      return;
    }
    ctx.metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': ctx.metrics.registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ Err: err.message })),
    );
  };
}

/** What the admin API needs from the daemon; its client of dockerd is made with the app. */
export type AdminBase = Omit<AdminContext, 'docker'>;

/**
 * Serves the admin API on `socket` (and GET /metrics on `metricsAddress`, already checked by
 * parseAddress). Never rejects for a listener it cannot open: that is logged, and the others serve.
 */
export async function startAdmin(base: AdminBase, socket: string, metricsAddress?: string): Promise<AdminListeners> {
  // The Express app and its client of dockerd (undici) are made at the first admin request: together
  // ~0.4 s of loading and ~35 MB of resident memory that a daemon nobody administers never needs.
  let ctx: AdminContext | undefined;
  let app: http.RequestListener | undefined;
  const serveAdmin: http.RequestListener = (req, res) => {
    try {
      if (!app) {
        const { DockerClient, dockerSocketOf } = require('./docker') as typeof import('./docker');
        const { createAdminApp } = require('./app') as typeof import('./app');
        ctx = { ...base, docker: new DockerClient(dockerSocketOf(base.config.dockerHost)) };
        app = createAdminApp(ctx);
      }
    } catch (err) {
      // A broken install must not take the plugin socket down with it: this request fails, loudly.
      base.log.error({ err: (err as Error).message }, 'admin API could not load');
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ Err: `admin API could not load: ${(err as Error).message}` }));
      return;
    }
    app(req, res);
  };
  let admin: http.Server | undefined = http.createServer(serveAdmin);
  try {
    await listenUnix(admin, socket, 0o600);
  } catch (err) {
    // dockerd's requests matter more than the operator's: the plugin still serves, and says why the admin API does not.
    base.log.error({ adminSocket: socket, err: (err as Error).message }, 'admin API not served: hostvol commands cannot reach this daemon; fix that and restart it, or give --admin-socket');
    admin = undefined;
  }
  let metrics: http.Server | undefined;
  if (metricsAddress) {
    const { host, port } = parseAddress(metricsAddress);
    metrics = http.createServer(metricsOnly(base));
    try {
      await new Promise<void>((resolve, reject) => {
        metrics!.once('error', reject);
        metrics!.listen(port, host, () => resolve());
      });
    } catch (err) {
      base.log.error(
        { metricsAddress, err: (err as Error).message },
        `metrics not served on ${metricsAddress}: ${(err as Error).message}; choose another --metrics-address and restart (the admin socket serves GET /metrics regardless)`,
      );
      metrics = undefined;
    }
  }
  return {
    admin,
    metrics,
    close: async () => {
      await Promise.all([admin ? closeServer(admin, 2000) : undefined, metrics ? closeServer(metrics, 2000) : undefined]);
      await ctx?.docker.close();
    },
  };
}
