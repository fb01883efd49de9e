// What the driver needs of a store: volume records and mount leases, every change durable before its
// promise resolves. The embedded SQLite store implements it (and a cluster store can): the driver
// never knows which one it has. Records are plain data; the driver owns what their fields mean.

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

export interface LeaseRecord {
  volume: string;
  id: string;
  count: number;
  bootId: string;
  /** The client generation the lease was recorded in (see Store.generation). */
  generation: number;
}

/** Everything a store holds, read once at start-up. */
export interface Snapshot {
  volumes: Iterable<VolumeRecord>;
  leases: LeaseRecord[];
  /** A counter the driver advances whenever its client (dockerd) starts afresh; 0 until first set. */
  generation: number;
}

/**
 * Every method that changes something resolves only once the change is durable (it survives a power
 * cut), and rejects with a HostvolError that names what could not be written and how to fix it.
 * Concurrent calls may share one commit; each still resolves only after its own change is durable.
 */
export interface Store {
  /** Reads every record; called once, before any change. */
  load(): Promise<Snapshot>;
  /** Records a new volume; rejects when a record of that name exists. */
  insertVolume(rec: VolumeRecord): Promise<void>;
  setState(name: string, state: RecordState): Promise<void>;
  /** Forgets a volume and any leases it still had, at once. */
  deleteVolume(name: string): Promise<void>;
  /** Records the count of one lease; a count of zero removes it. */
  setLease(lease: LeaseRecord): Promise<void>;
  setGeneration(n: number): Promise<void>;
  /** Drops leases recorded under another boot (after a reboot no process can still hold them); how many. */
  dropLeasesFromOtherBoots(bootId: string): Promise<number>;
  close(): Promise<void>;
}
