// Wires the pieces together: listen first (managed plugins must answer within ~9.5 s of start),
// then open the store, recover, and let the requests that arrived meanwhile through. The admin socket
// listens alongside from the start but loads Express and undici only when first asked (admin/serve.ts).
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import pino, { type Logger } from 'pino';
import { Driver } from './volumes/driver';
import { type HostPaths } from './volumes/hostpaths';
import { describe } from './errors';
import { createLabeler, type Labeler, type SelinuxMode } from './host/labels';
import { closeServer, listenUnix } from './plugin/listen';
import { systemMounter, type Mounter } from './host/mounter';
import { Confinement, realLocation } from './host/paths';
import { recover } from './volumes/recover';
import { createApp } from './plugin/server';
import { refusingApp } from './plugin/refusal';
import { openStore, type ClusterConfig } from './store/open';
import type { Store } from './store/store';
import { follow } from './volumes/follow';
import { mountedElsewhere } from './host/inuse';
import { createMetrics, timedMounter, timedStore, type Metrics } from './admin/metrics';
import { parseAddress, startAdmin, type AdminListeners } from './admin/serve';
import { CLAIM_FILE, checkClaim, ensureStoreId, findStore, readClaim, writeClaim } from './store/identity';

export interface Config {
  socket: string;
  dataRoot: string;
  stateDir: string;
  /** Extra roots for `-o path=`; the data root is always allowed. */
  allowPaths: string[];
  logLevel: string;
  selinux: SelinuxMode;
  /** Set in managed mode: every volume is bind-mounted below it and Mount returns that path. */
  propagatedMount?: string;
  /** Managed mode: a host directory mounted into the plugin, which `-o path=` may use. */
  hostPaths?: HostPaths;
  /**
   * Managed mode: the host directory of the `state` mount, as the operator named it (HOSTVOL_STATE_SOURCE).
   * Unlike the mount source it survives `docker plugin upgrade`, so it names the store to go back to.
   */
  stateSource?: string;
  bootIdFile: string;
  /** First delay of the stale-lease sweeper, in ms (tests shorten it). */
  staleSweepMs?: number;
  /** The admin API's root-only Unix socket; none when unset (the CLI always sets it: cli.ts). */
  adminSocket?: string;
  /** Also serve GET /metrics on TCP at HOST:PORT; off when unset. */
  metricsAddress?: string;
  /** dockerd's API: unix:///path or a path (default /var/run/docker.sock). */
  dockerHost?: string;
  /** The name this node's mount leases are shown under (--node-name; default the hostname). */
  nodeName?: string;
  /** Cluster mode: volume records and mount leases in etcd, shared by every node (scope global). */
  cluster?: ClusterConfig;
}

export const defaults: Config = {
  socket: '/run/docker/plugins/hostvol.sock',
  dataRoot: '/var/lib/hostvol/volumes',
  stateDir: '/var/lib/hostvol',
  allowPaths: [],
  logLevel: 'info',
  selinux: 'auto',
  bootIdFile: '/proc/sys/kernel/random/boot_id',
};

export interface Daemon {
  server: http.Server;
  ready: Promise<Driver>;
  log: Logger;
  metrics: Metrics;
  /**
   * The admin socket's server (and the metrics listener), started right after the plugin socket:
   * undefined without config.adminSocket, or when the admin API failed to start. Never rejects: what
   * failed is logged.
   */
  adminReady: Promise<AdminListeners | undefined>;
  /** What adminReady resolved to, from then on. */
  admin?: AdminListeners;
  close(): Promise<void>;
}

/** `deps` replace the real logger, mounter or labeler (tests inject faults through them). */
export async function startDaemon(config: Config, deps: { log?: Logger; mounter?: Mounter; labeler?: Labeler } = {}): Promise<Daemon> {
  const log = deps.log ?? pino({ level: config.logLevel, base: { pid: process.pid } });
  let resolveReady!: (d: Driver) => void;
  let rejectReady!: (e: unknown) => void;
  const ready = new Promise<Driver>((res, rej) => ((resolveReady = res), (rejectReady = rej)));
  ready.catch(() => undefined); // surfaced through the requests that await it and through start-up

  const metrics = createMetrics();
  metrics.watch(ready);
  const server = http.createServer(createApp(ready, log, metrics.observeRequest));
  // Longer than Go's pooled-connection idle time, so Node does not close a connection dockerd is about to reuse.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  // Not HTTP at all: there is no request to route, but the answer is still JSON with an Err.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') return void socket.destroy();
    const body = JSON.stringify({ Err: `malformed HTTP request: ${err.code ?? err.message}` });
    socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  // A malformed --metrics-address is the operator's typo: refuse it now, not after start-up.
  if (config.metricsAddress) parseAddress(config.metricsAddress);
  await listenUnix(server, config.socket);

  const daemon: Daemon = { server, ready, log, metrics, adminReady: Promise.resolve(undefined), close: async () => undefined };
  // The admin socket listens from the start, so `hostvol` commands never find it missing while the
  // daemon runs (they wait on `ready` like dockerd's requests). Listening loads nothing: Express,
  // undici and prom-client load at the first admin request (admin/serve.ts).
  if (config.adminSocket) {
    const adminSocket = config.adminSocket;
    daemon.adminReady = startAdmin({ ready, log, metrics, config }, adminSocket, config.metricsAddress)
      .then((admin) => (daemon.admin = admin))
      .catch((err: unknown) => {
        log.error({ adminSocket, err: describe(err) }, 'admin API not served: hostvol commands cannot reach this daemon');
        return undefined;
      });
  }
  const closeAll = async () => {
    await Promise.all([closeServer(server), daemon.adminReady.then((admin) => admin?.close())]);
  };

  // Managed mode: refuse a store other than the one this plugin instance served (store/identity.ts). The
  // socket stays up: dockerd needs answers, and every volume call then gets the Err that names the fix
  // (plugin/refusal.ts says why Get is answered differently).
  const claimFile = config.propagatedMount !== undefined ? path.join(config.propagatedMount, CLAIM_FILE) : undefined;
  const stateSource = config.stateSource ?? config.stateDir;
  if (claimFile) {
    try {
      checkClaim(readClaim(claimFile), findStore(config.stateDir), stateSource, config.stateDir);
    } catch (err) {
      log.error({ err: describe(err) }, 'refusing to serve');
      rejectReady(err);
      server.removeAllListeners('request');
      server.on('request', refusingApp(describe(err), config.propagatedMount!, log));
      let closing: Promise<void> | undefined;
      daemon.close = () => (closing ??= closeAll());
      return daemon;
    }
  }

  let store: Store | undefined;
  let stopFollowing = () => undefined as unknown;
  try {
    store = openStore(config, log);
    const mounter = timedMounter(deps.mounter ?? systemMounter, metrics);
    const driver = await openDriver(config, timedStore(store, metrics), log, mounter, deps.labeler ?? createLabeler(config.selinux));
    // Only once the store is open (and so this process owns it) is it given an id and claimed. (The etcd
    // store gives it one at load, after checkClaim: it publishes the id with its node name, etcd-node.ts.)
    stopFollowing = follow(driver);
    const storeId = ensureStoreId(config.stateDir);
    if (claimFile) writeClaim(claimFile, { storeId, stateSource });
    resolveReady(driver);
    log.info(
      { socket: config.socket, adminSocket: config.adminSocket, metricsAddress: config.metricsAddress, dataRoot: driver.deps.dataRoot, allowPaths: driver.deps.confinement.roots,
        storeId, scope: store.scope, node: config.cluster?.node, managed: driver.deps.layout.managed, selinux: driver.deps.labeler.enabled, volumes: driver.volumes.size },
      'hostvol ready',
    );
  } catch (err) {
    rejectReady(err);
    await store?.close().catch(() => undefined);
    await closeAll();
    throw err;
  }

  let closing: Promise<void> | undefined;
  daemon.close = () =>
    (closing ??= (async () => {
      await closeAll();
      stopFollowing();
      await (await ready).idle();
      await store?.close();
      log.info('hostvol stopped');
    })());
  return daemon;
}

/** Start-up work, before any request is served: synchronous file system calls are fine here. */
async function openDriver(config: Config, store: Store, log: Logger, mounter: Mounter, labeler: Labeler): Promise<Driver> {
  fs.mkdirSync(config.dataRoot, { recursive: true, mode: 0o755 });
  const dataRoot = fs.realpathSync(config.dataRoot);
  const stateDir = fs.realpathSync(config.stateDir);
  for (const p of config.allowPaths) {
    if (!fs.existsSync(p)) log.warn({ path: p }, 'allowed path does not exist (yet)');
  }
  const managed = config.propagatedMount !== undefined;
  const mountsDir = managed ? await realLocation(config.propagatedMount!) : path.join(stateDir, 'mounts');
  fs.mkdirSync(mountsDir, { recursive: true, mode: 0o755 });
  const snapshot = await store.load();
  const roots = [dataRoot, ...config.allowPaths, ...(config.hostPaths ? [config.hostPaths.plugin] : [])];
  const driver = new Driver(
    {
      store,
      mounter,
      labeler,
      log,
      dataRoot,
      stateDir,
      mountsDir,
      confinement: await Confinement.create(roots),
      layout: { mountsDir, managed },
      bootId: readBootId(config.bootIdFile),
      hostPaths: config.hostPaths,
      inUse: (dir) => mountedElsewhere(dir, mountsDir),
      sweepMs: config.staleSweepMs,
    },
    snapshot.generation,
  );
  await recover(driver, snapshot);
  return driver;
}

function readBootId(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new Error(`cannot read the kernel boot id from ${file}: ${describe(err)}`);
  }
}
