// The recorded history of a cluster run and the checker over it. Every request is an event with the
// node, the volume, the Mount ID, when it was sent and when its answer came, and the answer (ok, Err,
// or none: the node was killed). A Mount answered ok starts a *holding* (a container on that node
// writes the volume) that ends when its Unmount is sent, or when the node is killed (dockerd and its
// containers die with it, as in the issue's scenario); a node killed before its Mount's answer was
// read holds nothing. The checker finds:
// - two holdings of a `Z` volume by different Mount IDs that overlap in time (two writers at once);
// - a Remove answered ok while a holding of its volume lasted from before it was sent until after it
//   was answered (removed while mounted).
// A node that lost its etcd lease (starved or cut off past the TTL; it logs it) lost its mount leases
// with it, while its containers keep writing: the case the README says leases cannot cover. Its
// holdings at that moment are set aside, not checked, and counted: the run reports how many.

export type Kind = 'create' | 'mount' | 'unmount' | 'remove';

export interface Event {
  node: number;
  kind: Kind;
  volume: string;
  id?: string;
  start: number;
  end: number;
  outcome: 'ok' | 'err' | 'lost';
  err?: string;
}

export interface Holding {
  node: number;
  volume: string;
  id: string;
  from: number;
  to: number;
  /** The node lost its etcd lease while it held this (at that time): not checked. */
  leaseLostAt?: number;
}

/** How long after its etcd lease expired a node may log it. */
const LEARNT_WITHIN_MS = 2000;

export class History {
  readonly events: Event[] = [];
  readonly kills: { node: number; at: number }[] = [];
  readonly leaseLosses: { node: number; at: number }[] = [];

  record(e: Event): void {
    this.events.push(e);
  }

  killed(node: number, at: number): void {
    this.kills.push({ node, at });
  }

  /** The node logged that its etcd lease expired (it was unreachable or starved past the TTL). */
  leaseLost(node: number, at: number): void {
    this.leaseLosses.push({ node, at });
  }

  /** Mount answered ok → the Unmount of that node and ID sent next, or the node's next kill. */
  holdings(now = Number.MAX_SAFE_INTEGER): Holding[] {
    const out: Holding[] = [];
    const mounts = this.events.filter((e) => e.kind === 'mount' && e.outcome === 'ok').sort((a, b) => a.end - b.end);
    for (const m of mounts) {
      const unmount = this.events
        .filter((e) => e.kind === 'unmount' && e.node === m.node && e.id === m.id && e.volume === m.volume && e.start >= m.end)
        .reduce((t, e) => Math.min(t, e.start), now);
      // From the Mount's sending: a node killed while it was in flight (its answer read after the kill
      // was recorded) took the lease in a process that died with its containers; the holding is empty.
      const kill = this.kills.filter((k) => k.node === m.node && k.at >= m.start).reduce((t, k) => Math.min(t, k.at), now);
      const to = Math.min(unmount, kill);
      // Logged when the node learns of it (its next keepalive answer), after etcd dropped the lease:
      // a loss logged shortly after the holding ended may still have cut it.
      const lost = this.leaseLosses.find((l) => l.node === m.node && l.at >= m.end && l.at <= to + LEARNT_WITHIN_MS);
      out.push({ node: m.node, volume: m.volume, id: m.id!, from: m.end, to, ...(lost ? { leaseLostAt: lost.at } : {}) });
    }
    return out;
  }
}

export interface Violation {
  text: string;
  volume: string;
  /** The span it concerns: the holdings and the Remove involved. */
  from: number;
  to: number;
}

/** Every violation in the history, one sentence each. `exclusive(v)`: whether v was created with Z. */
export function violations(h: History, exclusive: (volume: string) => boolean): string[] {
  return findViolations(h, exclusive).map((v) => v.text);
}

export function findViolations(h: History, exclusive: (volume: string) => boolean): Violation[] {
  const out: Violation[] = [];
  const holdings = h.holdings().filter((x) => x.leaseLostAt === undefined);
  const byVolume = new Map<string, Holding[]>();
  for (const x of holdings) byVolume.set(x.volume, [...(byVolume.get(x.volume) ?? []), x]);
  for (const [volume, list] of byVolume) {
    if (!exclusive(volume)) continue;
    const sorted = [...list].sort((a, b) => a.from - b.from);
    for (let i = 0; i < sorted.length; i++) {
      for (let j = i + 1; j < sorted.length && sorted[j].from < sorted[i].to; j++) {
        const [a, b] = [sorted[i], sorted[j]];
        if (a.node === b.node && a.id === b.id) continue;
        const text = `two writers of Z volume "${volume}": node${a.node + 1}/${a.id} [${a.from}, ${a.to}) and node${b.node + 1}/${b.id} [${b.from}, ${b.to})`;
        out.push({ text, volume, from: a.from, to: Math.max(a.to, b.to) });
      }
    }
  }
  for (const r of h.events.filter((e) => e.kind === 'remove' && e.outcome === 'ok')) {
    for (const x of byVolume.get(r.volume) ?? []) {
      if (x.from < r.start && x.to > r.end) {
        const text = `volume "${r.volume}" removed by node${r.node + 1} [${r.start}, ${r.end}] while node${x.node + 1}/${x.id} held it [${x.from}, ${x.to})`;
        out.push({ text, volume: r.volume, from: x.from, to: Math.max(x.to, r.end) });
      }
    }
  }
  return out;
}

/**
 * What happened around a violation, one line each, in time order: every request on its volume, every
 * node kill and every lease loss a node logged, from `marginMs` before to `marginMs` after. A failed
 * run's message carries it, so the log alone tells a product bug from a checker bug.
 */
export function timeline(h: History, v: Violation, marginMs = 5000): string[] {
  const [lo, hi] = [v.from - marginMs, v.to + marginMs];
  const rows: [number, string][] = [];
  for (const e of h.events) {
    if (e.volume !== v.volume || e.end < lo || e.start > hi) continue;
    rows.push([e.start, `[${e.start}, ${e.end}] node${e.node + 1} ${e.kind}${e.id ? ` ${e.id}` : ''}: ${e.outcome}${e.err ? ` (${e.err})` : ''}`]);
  }
  for (const k of h.kills) if (k.at >= lo && k.at <= hi) rows.push([k.at, `${k.at} node${k.node + 1} killed`]);
  for (const l of h.leaseLosses) if (l.at >= lo && l.at <= hi) rows.push([l.at, `${l.at} node${l.node + 1} logged its etcd lease lost`]);
  return rows.sort((a, b) => a[0] - b[0]).map((r) => r[1]);
}
