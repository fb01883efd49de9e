// What the driver needs of a store: volume records and mount leases, every change durable before its
// promise resolves. Two implementations: the embedded SQLite store (one host, scope 'local') and the
// etcd store (every node of a cluster, scope 'global'). The driver never knows which one it has: the
// cluster rules (another node made the volume, another node holds a lease) are answers of these
// methods, and for the SQLite store they are the same rules over its own rows. Records are plain data;
// the driver owns what their fields mean.

/** `creating` and `removing` mark work in progress, so start-up can finish or undo it after a crash. */
export type RecordState = 'creating' | 'ready' | 'removing';

export interface VolumeRecord {
  name: string;
  path: string;
  options: string; // JSON, owned by the caller
  createdBy: 'hostvol' | 'existing';
  createdAt: string;
  state: RecordState;
  /** The first directory hostvol made for this volume (what to remove when undoing a create). */
  made: string | null;
}

/** One Mount ID's mounts on this node. Leases of other nodes are never handed to the driver (only to the admin API: Store.leases). */
export interface LeaseRecord {
  volume: string;
  id: string;
  count: number;
  bootId: string;
  /** The client generation the lease was recorded in (see Store.generation). */
  generation: number;
}

/** A mount lease as the store holds it, with the node that holds it (what the admin commands show). */
export interface NodeLease extends LeaseRecord {
  node: string;
}

/** Everything a store holds for this node, read once at start-up. */
export interface Snapshot {
  /**
   * Every volume of every node that start-up may act on: ready ones, this node's unfinished ones, and
   * removes left by nodes that are gone (start-up finishes them). Another node's create or remove in
   * progress is left out; the watch reports how it ends.
   */
  volumes: Iterable<VolumeRecord>;
  /** This node's leases. */
  leases: LeaseRecord[];
  /** A counter the driver advances whenever its client (dockerd) starts afresh; 0 until first set. */
  generation: number;
}

/** A record another node created, changed (`record`) or removed (`record` null). */
export interface RemoteChange {
  name: string;
  record: VolumeRecord | null;
  /**
   * False once something newer happened to the name (this node wrote it, or a later change came):
   * a change applied late (it waited for this node's own operation on the name) must then be dropped.
   */
  current(): boolean;
}

export interface StoreHealth {
  /** False while changes cannot be made (etcd unreachable or without quorum; a failed SQLite file). */
  available: boolean;
  /** Why not, for Status and logs. */
  reason?: string;
  /** When it became unavailable (ISO time). */
  since?: string;
}

/**
 * Every method that changes something resolves only once the change is durable (on disk, or
 * committed by an etcd quorum), and rejects with a HostvolError that names what could not be
 * written and how to fix it; a refusal by the rules below is a ConflictError. Concurrent calls may
 * share one commit; each still resolves only after its own change is durable.
 */
export interface Store {
  /** 'local': this host's volumes only; 'global': one set of volumes shared by every node (Capabilities). */
  readonly scope: 'local' | 'global';
  /** This node's name, which its leases are recorded under (`--node-name`, default the hostname). */
  readonly node: string;
  /** Reads every record; called once, before any change. */
  load(): Promise<Snapshot>;
  /**
   * Records a new volume and resolves undefined. When a volume of that name already exists (another
   * node made it, or a record the driver did not know of), nothing is written and it resolves to
   * that record: the driver compares its options (Create is idempotent across nodes).
   */
  insertVolume(rec: VolumeRecord): Promise<VolumeRecord | undefined>;
  /**
   * Marking a volume 'removing' is refused (ConflictError naming the nodes) while another node holds
   * a lease of it, decided in one transaction; from then on no node can take a lease of it. A
   * volume another node is still creating cannot be marked 'removing' either.
   */
  setState(name: string, state: RecordState): Promise<void>;
  /** Forgets a volume and this node's leases of it, at once; refused like setState 'removing'. */
  deleteVolume(name: string): Promise<void>;
  /**
   * Records the count of one lease of this node; a count of zero removes it. A lease is taken only
   * of a 'ready' volume. With `exclusive` (option Z) it is refused (ConflictError) when any other
   * Mount ID, on any node, holds the volume: checked and written in one transaction. Resolves to a
   * fencing token that grows with every lease taken of any volume (etcd: the key's mod revision).
   * The one change that may resolve before it is durable: a count going down (an Unmount) while the
   * store is unavailable (etcd unreachable) is kept and written once it is back; it only makes room
   * for others, and a cut-off node's leases expire anyway. It then resolves to 0.
   */
  setLease(lease: LeaseRecord, opts?: { exclusive?: boolean }): Promise<number>;
  /** This node's alone: the etcd store, like an Unmount, writes it once etcd is back if it cannot now. */
  setGeneration(n: number): Promise<void>;
  /** Drops leases recorded under another boot (after a reboot no process can still hold them); how many. */
  dropLeasesFromOtherBoots(bootId: string): Promise<number>;
  /**
   * Reports records other nodes create, change or remove, in the order they happened and newer than
   * anything this node wrote to the same name, so the driver's table stays current. The SQLite store
   * has no other writers and never calls it. Returns a function that stops the reports.
   */
  watch(listener: (change: RemoteChange) => void): () => void;
  /**
   * The record of `name` as the store holds it now, for a name the driver's table does not know: the
   * watch may lag (a reconnect after an etcd member died), and a Mount, Unmount or Remove of a volume
   * another node made must not fail meanwhile. The SQLite store's records are all in the table: none.
   */
  lookup(name: string): Promise<VolumeRecord | undefined>;
  /**
   * Every mount lease of `volume` (of every volume, without it) on every node, as the store holds it
   * now, sorted by volume, node and Mount ID: in a cluster the driver's table knows this node's
   * leases only, and an operator asking who holds a volume needs the others' too. The SQLite store
   * has no other node: its leases are all under its own name. Rejects like a change when the store
   * cannot be read (etcd unreachable).
   */
  leases(volume?: string): Promise<NodeLease[]>;
  health(): StoreHealth;
  close(): Promise<void>;
}
