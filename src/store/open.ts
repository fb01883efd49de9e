// Which store a daemon serves: the embedded SQLite store, or with --etcd the cluster's etcd store.
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { Logger } from 'pino';
import type { EtcdStore } from './etcd';
import { SqliteStore } from './sqlite';
import type { Store } from './store';

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

export function openStore(config: { stateDir: string; dataRoot: string; nodeName?: string; cluster?: ClusterConfig }, log: Logger): Store {
  const c = config.cluster;
  if (!c) return new SqliteStore(config.stateDir, config.nodeName || os.hostname());
  fs.mkdirSync(config.stateDir, { recursive: true, mode: 0o700 }); // bind mounts and the store id still live there
  const read = (f: string | undefined) => (f ? fs.readFileSync(f) : undefined);
  if ((c.cert || c.key) && !c.cacert) throw new Error('--etcd-cert and --etcd-key need --etcd-cacert (the CA that signed the etcd server certificates)');
  const tls = c.cacert ? { ca: read(c.cacert)!, cert: read(c.cert), key: read(c.key) } : undefined;
  // Loaded only in cluster mode: the etcd client (gRPC) takes ~0.4 s to load, which a host with the
  // embedded store would pay at every start, before its first answer to dockerd.
  const { EtcdStore: Etcd } = require('./etcd') as { EtcdStore: typeof EtcdStore };
  return new Etcd({ urls: c.urls, node: c.node, prefix: c.prefix, leaseTtl: c.leaseTtl, tls, opTimeoutMs: c.opTimeoutMs, dataRoot: config.dataRoot, stateDir: config.stateDir }, log);
}
