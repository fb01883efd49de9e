// A volume as the driver holds it in memory, how it maps to and from a store record, and the
// rules derived from its options (where it is mounted, whether its data is deleted on remove).
import * as path from 'node:path';
import { InvalidRequestError } from '../errors';
import type { OnRemove, VolumeOptions } from './options';
import type { LeaseRecord, RecordState, VolumeRecord } from '../store/store';

export interface Volume {
  name: string;
  /** Real path of the data directory. */
  path: string;
  options: VolumeOptions;
  createdBy: VolumeRecord['createdBy'];
  createdAt: string;
  state: RecordState;
  made: string | null;
  /** Active Mount IDs and how many times each is mounted (dockerd mounts one ID twice for docker cp). */
  leases: Map<string, Lease>;
  /**
   * True while this process knows there is no bind mount of the volume at its target: it made the
   * volume and has not bound it since, or released the bind since. Unset (not known, as after a
   * restart) means a Remove must release whatever may be there.
   */
  unbound?: boolean;
}

export interface Lease {
  count: number;
  /** The dockerd generation (one per /Plugin.Activate) that last mounted this ID. */
  generation: number;
  /**
   * Recorded by an earlier hostvol process. Its Unmount may have been lost while hostvol was down
   * (dockerd does not retry it), so it is only trusted while its mount is still visible somewhere.
   */
  inherited: boolean;
}

/** Where bind mounts go: `<state-dir>/mounts` for a host service, the propagated mount when managed. */
export interface Layout {
  mountsDir: string;
  /** Managed: the data directories are invisible to the host, so even Get answers the bind target. */
  managed: boolean;
}

// Docker's own rule for local volumes, with a length cap: no "..", "/", NUL or empty names.
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;

export function checkName(name: string): void {
  if (name === '') throw new InvalidRequestError('volume name is empty');
  if (!NAME.test(name)) {
    const shown = JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
    throw new InvalidRequestError(
      `invalid volume name ${shown}: use 1 to 255 characters from [A-Za-z0-9_.-], starting with a letter or digit`,
    );
  }
}

/**
 * Where Mount puts the volume, for every volume: a path in hostvol's own directory, which no container
 * can rewrite, holding a bind of the directory reached without following symlinks. Handing dockerd
 * the data directory itself would let a container that can write a parent of it swap a component
 * for a symlink between our check and dockerd's bind mount.
 */
export function bindTarget(v: Volume, layout: Layout): string {
  return path.join(layout.mountsDir, v.name);
}

/**
 * What Get, List and Path show. A host service shows the data directory (what operators look for in
 * `docker volume inspect`); a managed plugin's data directories are only visible inside the plugin.
 */
export function mountpoint(v: Volume, layout: Layout): string {
  return layout.managed ? bindTarget(v, layout) : v.path;
}

/**
 * Only data hostvol made in its data root is deleted by default. A directory the operator named with
 * `-o path=`/`mountpoint=` is kept, as local-persist users expect, unless they ask for onremove=delete.
 */
export function onRemove(v: Volume): OnRemove {
  return v.options.onRemove ?? (v.createdBy === 'hostvol' && v.options.path === undefined ? 'delete' : 'keep');
}

/** What `docker volume inspect` shows under Status. */
export function status(v: Volume): Record<string, unknown> {
  return {
    path: v.path,
    options: v.options.mode === undefined ? v.options : { ...v.options, mode: `0${v.options.mode.toString(8)}` },
    mounts: v.leases.size,
    readOnly: v.options.readOnly,
    label: v.options.label ?? '',
    createdBy: v.createdBy,
    onRemove: onRemove(v),
  };
}

export function toRecord(v: Volume): VolumeRecord {
  const { name, path: p, createdBy, createdAt, state, made } = v;
  return { name, path: p, options: JSON.stringify(v.options), createdBy, createdAt, state, made };
}

// Most volumes share a handful of option sets; at start-up with 100k volumes, parsing each again
// cost time and memory. The objects are frozen, since several volumes may hold the same one.
const parsed = new Map<string, VolumeOptions>();
function parseStored(json: string): VolumeOptions {
  let options = parsed.get(json);
  if (!options) {
    options = Object.freeze(JSON.parse(json) as VolumeOptions);
    if (parsed.size < 1000) parsed.set(json, options);
  }
  return options;
}

export function fromRecord(rec: VolumeRecord, leases: LeaseRecord[]): Volume {
  return {
    name: rec.name,
    path: rec.path,
    options: parseStored(rec.options),
    createdBy: rec.createdBy,
    createdAt: rec.createdAt,
    state: rec.state,
    made: rec.made,
    leases: new Map(leases.map((l) => [l.id, { count: l.count, generation: l.generation, inherited: true }])),
  };
}
