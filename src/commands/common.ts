// What every admin command shares: how to find the admin socket (--admin-socket, --plugin,
// --docker-host), --format, and printing: JSON for scripts, aligned tables for people.
import { Command, Option } from 'commander';
import { DockerClient, dockerSocketOf } from '../admin/docker';
import { HostvolError } from '../errors';
import { AdminClient, pluginRef, type ConnectFlags } from './client';

export interface CommonFlags extends ConnectFlags {
  format: 'table' | 'json';
}

/** A command with the connection flags (and --format when it lists something). */
export function adminCommand(name: string, description: string, listing = true): Command {
  const cmd = new Command(name)
    .description(description)
    .addOption(new Option('--admin-socket <path>', 'hostvol\'s admin socket (default /run/hostvol/admin.sock)').env('HOSTVOL_ADMIN_SOCKET'))
    .addOption(new Option('--plugin <name>', 'a managed plugin: find its admin socket through dockerd'))
    .addOption(new Option('--docker-host <url>', 'dockerd\'s socket (unix:///path): for --plugin, containers, prune and doctor').env('DOCKER_HOST'));
  if (listing) cmd.addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'));
  return cmd;
}

/** Runs `fn` with a client of the admin socket the flags name, closing it afterwards. */
export async function withAdmin<T>(flags: ConnectFlags, fn: (c: AdminClient) => Promise<T>): Promise<T> {
  const client = await AdminClient.connect(flags);
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/**
 * A client of dockerd for what only dockerd knows (containers, its volume records). The CLI asks
 * dockerd itself rather than through hostvol: a managed plugin has no way to reach dockerd's socket.
 */
export async function withDocker<T>(flags: ConnectFlags, fn: (d: DockerClient) => Promise<T>): Promise<T> {
  const docker = new DockerClient(dockerSocketOf(flags.dockerHost ?? process.env.DOCKER_HOST));
  try {
    return await fn(docker);
  } finally {
    await docker.close();
  }
}

/**
 * Refuses a volume name dockerd already has: dockerd's create answers with the existing volume, so
 * a command that creates one (import --create, clone) would otherwise report, and on Ctrl-C undo by
 * removing, a volume it did not make.
 */
export async function refuseExisting(docker: DockerClient, name: string, what: string, hint: string): Promise<void> {
  const exists = await docker.call('GET', `/volumes/${encodeURIComponent(name)}`, what).then(
    () => true,
    (err) => ((err as { status?: number }).status === 404 ? false : Promise.reject(err)),
  );
  if (exists) throw new HostvolError(`volume "${name}" already exists; ${hint}`);
}

export interface DaemonInfo {
  version: string;
  managed: boolean;
  /** The driver name dockerd uses for a legacy hostvol (null when managed: the plugin's name is known only to dockerd). */
  driver: string | null;
  generation: number;
  dataRoot: string;
  volumes: number;
}

/** The driver name dockerd shows for this hostvol's volumes: --plugin's reference, else what a legacy daemon is called. */
export async function driverName(flags: ConnectFlags, admin: AdminClient): Promise<string> {
  if (flags.plugin) return pluginRef(flags.plugin);
  const info = await admin.json<DaemonInfo>('GET', '/info');
  if (info.driver === null) throw new Error('this hostvol is a managed plugin: give its name with --plugin NAME');
  return info.driver;
}

export function print(flags: { format?: string }, data: unknown, human: () => string): void {
  process.stdout.write(flags.format === 'json' ? `${JSON.stringify(data, null, 2)}\n` : human());
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

/** Sizes as docker prints them: decimal units (kB = 1000 bytes), three significant digits. */
export function humanBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n}B` : `${Number(v.toPrecision(3))}${units[i]}`;
}
