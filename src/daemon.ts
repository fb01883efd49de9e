// Wires the pieces together: listen first (managed plugins must answer within ~9.5 s of start),
// then open the store, recover, and let the requests that arrived meanwhile through.
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
import { SqliteStore } from './store/sqlite';
import { EtcdStore } from './store/etcd';
import type { Store } from './store/store';
import { follow } from './volumes/follow';
import { mountedElsewhere } from './host/inuse';
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
  /** Cluster mode: volume records and mount leases in etcd, shared by every node (scope global). */
  cluster?: ClusterConfig;
}

export interface ClusterConfig {
  /** Client URLs of the etcd members. */
  urls: string[];
  node: string;
  prefix: string;
  /** Seconds. */
  leaseTtl: number;
  /** PEM files for TLS to etcd: the CA, and this node's certificate and key (client auth). */
  cacert?: string;
  cert?: string;
  key?: string;
  /** Bound on one etcd change, in ms (default 5000). */
  opTimeoutMs?: number;
}

function openStore(config: Config, log: Logger): Store {
  const c = config.cluster;
  if (!c) return new SqliteStore(config.stateDir);
  fs.mkdirSync(config.stateDir, { recursive: true, mode: 0o700 }); // bind mounts and the store id still live there
  const read = (f: string | undefined) => (f ? fs.readFileSync(f) : undefined);
  if ((c.cert || c.key) && !c.cacert) throw new Error('--etcd-cert and --etcd-key need --etcd-cacert (the CA that signed the etcd server certificates)');
  const tls = c.cacert ? { ca: read(c.cacert)!, cert: read(c.cert), key: read(c.key) } : undefined;
  return new EtcdStore({ urls: c.urls, node: c.node, prefix: c.prefix, leaseTtl: c.leaseTtl, tls, opTimeoutMs: c.opTimeoutMs, dataRoot: config.dataRoot }, log);
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
  close(): Promise<void>;
}

/** `deps` replace the real logger, mounter or labeler (tests inject faults through them). */
export async function startDaemon(config: Config, deps: { log?: Logger; mounter?: Mounter; labeler?: Labeler } = {}): Promise<Daemon> {
  const log = deps.log ?? pino({ level: config.logLevel, base: { pid: process.pid } });
  let resolveReady!: (d: Driver) => void;
  let rejectReady!: (e: unknown) => void;
  const ready = new Promise<Driver>((res, rej) => ((resolveReady = res), (rejectReady = rej)));
  ready.catch(() => undefined); // surfaced through the requests that await it and through start-up

  const server = http.createServer(createApp(ready, log));
  // Longer than Go's pooled-connection idle time, so Node does not close a connection dockerd is about to reuse.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  // Not HTTP at all: there is no request to route, but the answer is still JSON with an Err.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') return void socket.destroy();
    const body = JSON.stringify({ Err: `malformed HTTP request: ${err.code ?? err.message}` });
    socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  await listenUnix(server, config.socket);

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
      return { server, ready, log, close: () => (closing ??= closeServer(server)) };
    }
  }

  let store: Store | undefined;
  let stopFollowing = () => undefined as unknown;
  try {
    store = openStore(config, log);
    const driver = await openDriver(config, store, log, deps.mounter ?? systemMounter, deps.labeler ?? createLabeler(config.selinux));
    // Only once the store is open (and so this process owns it) is it given an id and claimed.
    stopFollowing = follow(driver);
    const storeId = ensureStoreId(config.stateDir);
    if (claimFile) writeClaim(claimFile, { storeId, stateSource });
    resolveReady(driver);
    log.info(
      { socket: config.socket, dataRoot: driver.deps.dataRoot, allowPaths: driver.deps.confinement.roots,
        storeId, scope: store.scope, node: config.cluster?.node, managed: driver.deps.layout.managed, selinux: driver.deps.labeler.enabled, volumes: driver.volumes.size },
      'hostvol ready',
    );
  } catch (err) {
    rejectReady(err);
    await store?.close().catch(() => undefined);
    await closeServer(server);
    throw err;
  }

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await closeServer(server);
      stopFollowing();
      await (await ready).idle();
      await store?.close();
      log.info('hostvol stopped');
    })());
  return { server, ready, log, close };
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
