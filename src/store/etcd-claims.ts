// Which directories volumes use, as claims in etcd, so that two nodes creating volumes at the same
// time cannot place one inside the other or both at one directory. The driver's own check
// (volumes/directory.ts) sees only its table, and another node's create in progress is not in it
// (nor is a create whose report the watch has not brought yet): that check cannot decide alone.
//   <prefix>/paths<dir>/   the volume whose directory is <dir> (value: its name)
// A directory nests with a claimed one when its key starts with the claim's (the claim is inside it,
// or is it) or the claim's key is one of its parents' keys. A create's transaction compares both, so
// of two nesting creates at most one commits. A claim is written with its record and deleted with it;
// one left behind (a node died while creating: its record went with its etcd lease) is stale once no
// record of its name has that directory, and is cleared by the next create it stands in the way of.
import * as path from 'node:path';
import type { ICompare, IKeyValue, IRequestOp } from 'etcd3';
import { PathError } from '../errors';
import { decodeRecord, prefixEnd, type Keys } from './etcd-keys';
import { absent, del, modIs, range, txn } from './etcd-ops';
import type { EtcdSession } from './etcd-session';

export function claimKey(keys: Keys, dir: string): string {
  return `${keys.prefix}/paths${dir === '/' ? '' : dir}/`;
}

function parents(dir: string): string[] {
  const out: string[] = [];
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    out.push(d);
    if (d === '/') return out;
  }
}

/** Holds when no claim is `dir`, inside it, or one of its parents. */
export function unclaimed(keys: Keys, dir: string): ICompare[] {
  const own = Buffer.from(claimKey(keys, dir));
  // A compare over a range holds when every key in it holds; with no key, against a key of version 0.
  return [{ key: own, range_end: prefixEnd(claimKey(keys, dir)), target: 'Version', result: 'Equal', version: 0 }, ...parents(dir).map((p) => absent(claimKey(keys, p)))];
}

/** Reads the claims `unclaimed` compares (for a failed transaction's answer). */
export function claimReads(keys: Keys, dir: string): IRequestOp[] {
  return [range(claimKey(keys, dir), true), ...parents(dir).map((p) => range(claimKey(keys, p)))];
}

/**
 * A create of `name` at `dir` failed on the claims read in `found`: refuses it with a PathError when
 * a volume still has a nesting directory, or clears the stale claims (then the caller tries again).
 */
export async function settleClaims(session: EtcdSession, keys: Keys, name: string, dir: string, found: IKeyValue[]): Promise<void> {
  for (const kv of found) {
    const claimed = keys.claimedDir(kv.key.toString());
    const owner = kv.value.toString();
    const res = await txn(session, `read volume "${owner}"`, [], [range(keys.volume(owner))]);
    const rec = res.responses[0].response_range.kvs[0];
    const live = rec ? decodeRecord(rec.value) : undefined;
    if (live && live.path === claimed) {
      throw new PathError(`volume "${name}": ${dir} is or nests with the directory of volume "${owner}" (${claimed}, made by node ${live.node}); choose another path`);
    }
    // Stale: cleared only if neither the claim nor its volume's record changed since read.
    await txn(session, `clear a stale claim of ${claimed}`, [modIs(kv.key.toString(), kv.mod_revision), rec ? modIs(keys.volume(owner), rec.mod_revision) : absent(keys.volume(owner))], [del(kv.key.toString())]);
  }
}
