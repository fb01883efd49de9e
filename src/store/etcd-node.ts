// One live hostvol per node name. Everything a node holds in etcd is keyed by its name (its mount
// leases, its liveness key <prefix>/nodes/<node>, its data-root marker), so two live hostvols with one
// name would overwrite each other's keys and, at the next restart of either, drop the other's leases.
// The liveness key therefore says who published it: the store id of its state directory (store/
// identity.ts), which stays the same across restarts of one hostvol and differs between hosts and
// state directories. At start-up a liveness key of our name still on a live etcd lease is either our
// own previous life (this state directory's hostvol, SIGKILLed or stopped without revoking its lease,
// which lingers up to the TTL: taken over, as its mount leases are) or another hostvol using our name
// (refused). The publish compares the key's mod revision with the one the decision was read at, so
// two hostvols starting with one name at once cannot both win.
import * as os from 'node:os';
import type { IKeyValue } from 'etcd3';
import { HostvolError } from '../errors';
import { ensureStoreId } from './identity';
import type { Keys } from './etcd-keys';
import { modIs, put, range, txn } from './etcd-ops';
import type { EtcdSession } from './etcd-session';

/** Who runs as a node: enough to tell restarts of one hostvol apart from another, and to find it. */
export interface NodeIdentity {
  /** The store id of the state directory: the same across restarts, different per host/state dir. */
  storeId: string;
  host: string;
  stateDir: string;
  pid: number;
  startedAt: string;
}

/** The value of <prefix>/nodes/<node>. */
export interface Published extends Partial<NodeIdentity> {
  /** The data-root marker token (etcd-marker.ts). */
  token: string;
  dataRoot: string;
}

/** Start-up only (it may write the store id, synchronously). */
export function nodeIdentity(stateDir: string): NodeIdentity {
  return { storeId: ensureStoreId(stateDir), host: os.hostname(), stateDir, pid: process.pid, startedAt: new Date().toISOString() };
}

/** The node name is used by another live hostvol (another host or state directory). */
export class NodeNameInUseError extends HostvolError {
  override name = 'NodeNameInUseError';
}

/**
 * Throws NodeNameInUseError when `kv` (our name's liveness key, on a live etcd lease) was published
 * by another hostvol than `self`. A value without a store id was written by a hostvol from before
 * identities were published: it cannot be told apart, and is taken for our own previous life (as
 * before), so a rolling upgrade restarts.
 */
export function refuseOtherHolder(keys: Keys, self: NodeIdentity, kv: IKeyValue | undefined, ttl: number): void {
  if (!kv) return;
  const theirs = JSON.parse(kv.value.toString()) as Published;
  if (theirs.storeId === undefined || theirs.storeId === self.storeId) return;
  throw new NodeNameInUseError(
    `node name "${keys.node}" is already used by another live hostvol: host ${theirs.host}, state directory ${theirs.stateDir} ` +
      `(store ${theirs.storeId}), pid ${theirs.pid}, started ${theirs.startedAt}, data root ${theirs.dataRoot}; this one is host ` +
      `${self.host}, state directory ${self.stateDir} (store ${self.storeId}). Two hostvols with one name would overwrite each ` +
      `other's mount leases. Give each node its own name (--node-name or HOSTVOL_NODE_NAME), or stop the other one first ` +
      `(its name is free at most ${ttl} s after it stops)`,
  );
}

/** Our name's liveness key as it is now (undefined: nobody publishes it). */
export async function readNodeKey(session: EtcdSession, keys: Keys): Promise<IKeyValue | undefined> {
  const res = await txn(session, 'read this node name in etcd', [], [range(keys.nodeKey())]);
  return res.responses[0].response_range.kvs[0];
}

/**
 * Puts `published` on this node's current etcd lease if the key is still as it was read (`read`,
 * undefined: absent). Resolves to the key as it is now when another write came first.
 */
export async function publishIfUnchanged(session: EtcdSession, keys: Keys, published: Published, read: IKeyValue | undefined): Promise<IKeyValue | undefined | 'published'> {
  const key = keys.nodeKey();
  const res = await txn(session, 'publish this node', [modIs(key, read?.mod_revision ?? '0')], [put(key, JSON.stringify(published), session.id)], [range(key)]);
  return res.succeeded ? 'published' : res.responses[0].response_range.kvs[0];
}
