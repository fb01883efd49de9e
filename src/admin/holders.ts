// Who holds a volume: its mount leases on every node, for ls, inspect and leases. This node's come
// from the driver's table, which is what this node holds (with whether each is stale, and answering
// while etcd is unreachable); the other nodes' come from the store, the one place that knows them
// (a cluster's etcd; the SQLite store has no other node, so it adds none). When the store cannot be
// read, this node's leases are still shown and `othersUnknown` says why the rest are missing.
import { describe } from '../errors';
import type { Driver } from '../volumes/driver';
import { leasesOf, type LeaseView } from '../volumes/leases';

export interface Holders {
  /** By volume: its leases on every node, sorted by node, then Mount ID. Volumes without leases are absent. */
  byVolume: Map<string, LeaseView[]>;
  /** Set when the other nodes' leases could not be read: why. */
  othersUnknown?: string;
}

/** The leases of `volume`, or of every volume when it is omitted. */
export async function holders(driver: Driver, volume?: string): Promise<Holders> {
  const { store } = driver.deps;
  const byVolume = new Map<string, LeaseView[]>();
  const add = (l: LeaseView) => {
    const list = byVolume.get(l.volume);
    if (list) list.push(l);
    else byVolume.set(l.volume, [l]);
  };
  let othersUnknown: string | undefined;
  try {
    for (const l of await store.leases(volume)) {
      if (l.node === store.node) continue; // the table's copy is this node's own, also while etcd is away
      add({ volume: l.volume, node: l.node, id: l.id, count: l.count, generation: l.generation, stale: null });
    }
  } catch (err) {
    othersUnknown = `the leases of other nodes could not be read: ${describe(err)}`;
  }
  const own = volume === undefined ? driver.volumes.values() : [driver.volumes.get(volume)];
  for (const v of own) if (v) for (const l of leasesOf(driver, v)) add(l);
  for (const list of byVolume.values()) list.sort((a, b) => cmp(a.node, b.node) || cmp(a.id, b.id));
  return { byVolume, othersUnknown };
}

/** The nodes holding leases of a volume, each once, sorted. */
export function nodesOf(leases: LeaseView[]): string[] {
  return [...new Set(leases.map((l) => l.node))].sort(cmp);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
