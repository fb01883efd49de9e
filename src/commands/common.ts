// What every admin command shares: how to find the admin socket (--admin-socket, --plugin,
// --docker-host), --format, and printing: JSON for scripts, aligned tables for people.
import { Command, Option } from 'commander';
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
    .addOption(new Option('--docker-host <url>', 'dockerd\'s socket, for --plugin (unix:///path)').env('DOCKER_HOST'));
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

/** The driver name dockerd shows for this hostvol's volumes: the plugin's reference when managed, else the daemon's default. */
export const driverOf = (flags: ConnectFlags): string | undefined => (flags.plugin ? pluginRef(flags.plugin) : undefined);

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
