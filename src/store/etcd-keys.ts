// Where the etcd store keeps what, under one prefix (`--etcd-prefix`, default /hostvol):
//   <prefix>/volumes/<name>                 a volume record (JSON, with the node that wrote it)
//   <prefix>/guards/<name>                  rewritten by every lease taken of <name>: the revision
//                                           a decision read is compared with in its transaction
//   <prefix>/leases/<name>/<node>/<mountid> one Mount ID's mounts on one node, attached to the node's etcd lease
//   <prefix>/nodes/<node>                   a live node and its data-root marker, attached to its etcd lease
//   <prefix>/generation/<node>              the dockerd generation of one node
// Node names and Mount IDs are URI-encoded, so a '/' in them cannot move a key to another place.
import type { RecordState, VolumeRecord } from './store';

export class Keys {
  constructor(
    readonly prefix: string,
    readonly node: string,
  ) {}

  volumes(): string {
    return `${this.prefix}/volumes/`;
  }
  volume(name: string): string {
    return `${this.volumes()}${name}`;
  }
  guard(name: string): string {
    return `${this.prefix}/guards/${name}`;
  }
  allLeases(): string {
    return `${this.prefix}/leases/`;
  }
  leasesOf(name: string): string {
    return `${this.allLeases()}${name}/`;
  }
  ownLeasesOf(name: string): string {
    return `${this.leasesOf(name)}${encodeURIComponent(this.node)}/`;
  }
  lease(name: string, id: string): string {
    return `${this.ownLeasesOf(name)}${encodeURIComponent(id)}`;
  }
  nodes(): string {
    return `${this.prefix}/nodes/`;
  }
  nodeKey(node = this.node): string {
    return `${this.nodes()}${encodeURIComponent(node)}`;
  }
  generation(): string {
    return `${this.prefix}/generation/${encodeURIComponent(this.node)}`;
  }

  /** A lease key's parts: volume, node, Mount ID (undefined for a key that is not one). */
  parseLease(key: string): { volume: string; node: string; id: string } | undefined {
    if (!key.startsWith(this.allLeases())) return undefined;
    const [volume, node, id] = key.slice(this.allLeases().length).split('/');
    if (id === undefined) return undefined;
    return { volume, node: decodeURIComponent(node), id: decodeURIComponent(id) };
  }
  /** The directory a claim key (etcd-claims.ts) is of. */
  claimedDir(key: string): string {
    return key.slice(`${this.prefix}/paths`.length, -1) || '/';
  }
  nameOf(node: string): string {
    return decodeURIComponent(node.slice(this.nodes().length));
  }
}

/** The stored form of a volume record: the record plus the node that last wrote it. */
export interface StoredRecord extends VolumeRecord {
  node: string;
}

export function encodeRecord(rec: VolumeRecord, node: string): string {
  const { name, path, options, createdBy, createdAt, state, made } = rec;
  return JSON.stringify({ name, path, options, createdBy, createdAt, state, made, node });
}

export function decodeRecord(value: Buffer | string): StoredRecord {
  return JSON.parse(value.toString()) as StoredRecord;
}

export function withState(rec: StoredRecord, state: RecordState): VolumeRecord {
  return { ...plain(rec), state };
}

/** The record as the driver sees it (without the node). */
export function plain(rec: StoredRecord): VolumeRecord {
  const { name, path, options, createdBy, createdAt, state, made } = rec;
  return { name, path, options, createdBy, createdAt, state, made };
}

export interface StoredLease {
  count: number;
  bootId: string;
  generation: number;
  /** Taken with option Z: re-taken as exclusive after this node's etcd lease was lost. */
  exclusive: boolean;
}

/** The key after every key that starts with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i] < 0xff) {
      const end = Buffer.from(b.subarray(0, i + 1));
      end[i]++;
      return end;
    }
  }
  return Buffer.from([0]);
}
