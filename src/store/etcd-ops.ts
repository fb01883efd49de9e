// The few shapes of etcd request the cluster store makes, and the one read every decision starts
// from: a volume's record, its guard and every lease of it, in one transaction (one revision).
import type { ICompare, IKeyValue, IRequestOp, ITxnResponse } from 'etcd3';
import { decodeRecord, prefixEnd, type Keys, type StoredLease, type StoredRecord } from './etcd-keys';
import type { EtcdSession } from './etcd-session';
import type { NodeLease } from './store';

export const put = (key: string, value: string, lease?: string): IRequestOp => ({
  request_put: { key: Buffer.from(key), value: Buffer.from(value), lease },
});
export const del = (key: string, prefix = false): IRequestOp => ({
  request_delete_range: { key: Buffer.from(key), range_end: prefix ? prefixEnd(key) : undefined },
});
export const range = (key: string, prefix = false): IRequestOp => ({
  request_range: { key: Buffer.from(key), range_end: prefix ? prefixEnd(key) : undefined },
});
/** The key was not changed since it was read (a key that does not exist has mod revision 0). */
export const modIs = (key: string, rev: string): ICompare => ({ key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: rev });
export const absent = (key: string): ICompare => ({ key: Buffer.from(key), target: 'Version', result: 'Equal', version: 0 });
export const valueIs = (key: string, value: string): ICompare => ({ key: Buffer.from(key), target: 'Value', result: 'Equal', value: Buffer.from(value) });

/**
 * One transaction within the session's time bound. `unconfirmed` runs when it failed in a way that
 * may still have committed (no answer): the caller then knows etcd may hold what it wrote.
 */
export async function txn(
  session: EtcdSession,
  what: string,
  compare: ICompare[],
  success: IRequestOp[],
  failure: IRequestOp[] = [],
  unconfirmed?: () => void,
): Promise<ITxnResponse> {
  try {
    return await session.call(what, () => session.client.kv.txn({ compare, success, failure }));
  } catch (err) {
    unconfirmed?.();
    throw err;
  }
}

/** What one decision about a volume was read from. */
export interface View {
  record?: StoredRecord;
  recordMod: string;
  guardMod: string;
  leases: { key: string; node: string; id: string }[];
}

export async function readView(session: EtcdSession, keys: Keys, name: string, what: string): Promise<View> {
  const res = await txn(session, what, [], [range(keys.volume(name)), range(keys.guard(name)), range(keys.leasesOf(name), true)]);
  const [rec, guard, leases] = res.responses.map((r) => r.response_range.kvs);
  return {
    record: rec[0] ? decodeRecord(rec[0].value) : undefined,
    recordMod: rec[0]?.mod_revision ?? '0',
    guardMod: guard[0]?.mod_revision ?? '0',
    leases: leases.map((kv: IKeyValue) => ({ key: kv.key.toString(), ...keys.parseLease(kv.key.toString())! })),
  };
}

/**
 * Every lease of one volume (or of all) on every node, read in one request: the keys say volume,
 * node and Mount ID, the values the rest. Sorted by volume, node, Mount ID (etcd sorts keys bytewise
 * and the node and ID parts are URI-encoded, so it is sorted again on the decoded names).
 */
export async function readLeases(session: EtcdSession, keys: Keys, volume?: string): Promise<NodeLease[]> {
  const prefix = volume === undefined ? keys.allLeases() : keys.leasesOf(volume);
  const what = `read the mount leases of ${volume === undefined ? 'every volume' : `volume "${volume}"`}`;
  const res = await txn(session, what, [], [range(prefix, true)]);
  const out: NodeLease[] = [];
  for (const kv of res.responses[0].response_range.kvs) {
    const at = keys.parseLease(kv.key.toString());
    if (!at) continue;
    const l = JSON.parse(kv.value.toString()) as StoredLease;
    out.push({ volume: at.volume, node: at.node, id: at.id, count: l.count, bootId: l.bootId, generation: l.generation });
  }
  const order = (l: NodeLease) => [l.volume, l.node, l.id];
  return out.sort((a, b) => {
    const [x, y] = [order(a), order(b)];
    for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
  });
}
