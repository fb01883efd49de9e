// What Get shows of a volume, built once per change. dockerd asks Get for a volume before nearly
// every call that names it, and the answer changes only when one of its inputs does: the volume's
// mounts, options, path or owner, or the store's health. While none of them changed, the same frozen
// view object is handed out again, so the plugin socket can keep the reply it encoded for it too.
import type { Store, StoreHealth } from '../store/store';
import { toHost, type HostPaths } from './hostpaths';
import type { VolumeOptions } from './options';
import * as vol from './volume';

/** What Get answers: the driver's own shape, mapped to the wire by the plugin layer. */
export interface VolumeView {
  readonly name: string;
  readonly mountpoint: string;
  readonly createdAt: string;
  readonly status: Readonly<Record<string, unknown>>;
}

/** Everything a view is built from, beyond what never changes for a volume object (its name) or a driver. */
interface Inputs {
  mounts: number;
  options: VolumeOptions;
  path: string;
  createdBy: vol.Volume['createdBy'];
  createdAt: string;
  health: StoreHealth;
}

const same = (a: Inputs, b: Inputs): boolean =>
  a.mounts === b.mounts &&
  a.options === b.options &&
  a.path === b.path &&
  a.createdBy === b.createdBy &&
  a.createdAt === b.createdAt &&
  a.health.available === b.health.available &&
  a.health.reason === b.health.reason &&
  a.health.since === b.health.since;

/**
 * Views kept at most: enough for the volumes in use on a busy host; with 100k volumes a view for
 * each (and the reply encoded from it) would hold ~100 MB for Gets that are rarely repeated.
 */
export const VIEWS_KEPT = 4096;

export class VolumeViews {
  // In insertion order, the oldest dropped first; a removed volume's view goes the same way.
  private readonly built = new Map<vol.Volume, { inputs: Inputs; view: VolumeView }>();

  constructor(private readonly deps: { store: Store; layout: vol.Layout; hostPaths?: HostPaths }) {}

  of(v: vol.Volume): VolumeView {
    const inputs: Inputs = { mounts: v.leases.size, options: v.options, path: v.path, createdBy: v.createdBy, createdAt: v.createdAt, health: this.deps.store.health() };
    const memo = this.built.get(v);
    if (memo && same(memo.inputs, inputs)) return memo.view;
    const view = this.build(v, inputs.health);
    if (!memo && this.built.size >= VIEWS_KEPT) this.built.delete(this.built.keys().next().value!);
    this.built.set(v, { inputs, view });
    return view;
  }

  private build(v: vol.Volume, health: StoreHealth): VolumeView {
    const { store, layout, hostPaths } = this.deps;
    // While the store is unreachable the answer is this node's last known state: say so.
    const stale = health.available ? {} : { stale: `since ${health.since ?? '?'}: ${health.reason ?? 'store unavailable'}` };
    // In a cluster, `mounts` counts this node's (other nodes' are theirs to tell: hostvol inspect shows all): say which node.
    const node = store.scope === 'global' ? { node: store.node } : {};
    const status = Object.freeze({ ...vol.status(v), path: toHost(hostPaths, v.path), ...node, ...stale });
    return Object.freeze({ name: v.name, mountpoint: vol.mountpoint(v, layout), createdAt: v.createdAt, status });
  }
}
