// A managed plugin sees host directories only through the bind mounts in its config.json. Operators
// still write host paths (`-o path=/srv/data/app`), so those are translated to where the plugin sees
// them, and back again for what `docker volume inspect` shows (for the state mount too, which holds
// the data root). A host service maps nothing.
import * as path from 'node:path';
import { isInside } from '../host/paths';

export interface HostPaths {
  /** The host directory, as operators name it. */
  host: string;
  /** Where that directory is mounted inside the plugin. */
  plugin: string;
  /**
   * The state mount (config.json "state": state.source on the host, the state directory inside), once
   * the operator said where state.source is. Only for what is shown: `-o path=` never names it.
   */
  state?: { host: string; plugin: string };
}

/** Where config.json mounts the host paths directory inside the plugin. */
export const DEFAULT_PLUGIN_DIR = '/host-paths';

/** Parses `HOSTDIR[=PLUGINDIR]` (the `--host-paths` setting). */
export function parseHostPaths(spec: string): HostPaths {
  const [host, plugin = DEFAULT_PLUGIN_DIR, extra] = spec.split('=');
  if (!host?.startsWith('/') || !plugin.startsWith('/') || extra !== undefined) {
    throw new Error(`--host-paths takes HOSTDIR or HOSTDIR=PLUGINDIR, absolute paths, got "${spec}"`);
  }
  return { host: path.resolve(host), plugin: path.resolve(plugin) };
}

/** The plugin's name for a host path; paths outside the mapped directory are left as they are. */
export function toPlugin(map: HostPaths | undefined, p: string): string {
  if (!map) return p;
  const abs = path.resolve(p);
  return isInside(abs, map.host) ? path.join(map.plugin, path.relative(map.host, abs)) : p;
}

/**
 * Adds the host directory of the state mount (`--state-source`, set together with `docker plugin set
 * … state.source=`). The plugin cannot find it out: the mountinfo line of its state mount has only the
 * directory's path relative to the root of its file system, plus the device; where that file system is
 * mounted on the host is in the host's mount table, which the plugin may not read. The two agree only
 * when state.source is on the host's root file system, so the operator has to say it.
 */
export function withStateSource(map: HostPaths | undefined, source: string, stateDir: string): HostPaths {
  if (!map) throw new Error('--state-source (HOSTVOL_STATE_SOURCE) is a managed-plugin setting: it needs --host-paths too');
  if (!source.startsWith('/')) throw new Error(`--state-source takes the absolute host path of the state mount, got "${source}"`);
  return { ...map, state: { host: path.resolve(source), plugin: path.resolve(stateDir) } };
}

/** The host's name for a path the plugin uses. */
export function toHost(map: HostPaths | undefined, p: string): string {
  for (const m of map ? [map, map.state] : []) {
    if (m && isInside(p, m.plugin)) return path.join(m.host, path.relative(m.plugin, p));
  }
  return p;
}
