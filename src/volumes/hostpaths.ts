// A managed plugin sees host directories only through the bind mounts in its config.json. Operators
// still write host paths (`-o path=/srv/data/app`), so those are translated to where the plugin sees
// them, and back again for what `docker volume inspect` shows. A host service maps nothing.
import * as path from 'node:path';
import { isInside } from '../host/paths';

export interface HostPaths {
  /** The host directory, as operators name it. */
  host: string;
  /** Where that directory is mounted inside the plugin. */
  plugin: string;
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

/** The host's name for a path the plugin uses. */
export function toHost(map: HostPaths | undefined, p: string): string {
  if (!map || !isInside(p, map.plugin)) return p;
  return path.join(map.host, path.relative(map.plugin, p));
}
