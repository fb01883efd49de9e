#!/usr/bin/env node
// The `hostvol` command: flags and environment variables become a Config; `serve` runs the plugin.
import * as os from 'node:os';
import * as path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ADMIN_SOCKET_NAME, DEFAULT_ADMIN_SOCKET } from './admin/socket-paths';
import { startDaemon, defaults, type Config } from './daemon';
import { describe } from './errors';
import { parseHostPaths, withStateSource } from './volumes/hostpaths';
import { describeOptions } from './volumes/options';

const env = process.env;

function serveCommand(): Command {
  return new Command('serve')
    .description('serve the Docker volume plugin API on a Unix socket')
    .addOption(new Option('--socket <path>', 'Unix socket dockerd connects to').env('HOSTVOL_SOCKET').default(defaults.socket))
    .addOption(new Option('--data-root <dir>', 'where volumes without -o path live').env('HOSTVOL_DATA_ROOT').default(defaults.dataRoot))
    .addOption(new Option('--state-dir <dir>', 'embedded store and bind mounts').env('HOSTVOL_STATE_DIR').default(defaults.stateDir))
    .addOption(
      new Option('--allow-path <dir>', 'a directory -o path= may point into (repeatable; env: HOSTVOL_ALLOW_PATHS, colon-separated)')
        .argParser((value: string, prev: string[] | undefined) => [...(prev ?? []), value]),
    )
    .addOption(
      new Option('--log-level <level>', 'log level').env('HOSTVOL_LOG_LEVEL').default(defaults.logLevel)
        .choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal']),
    )
    .addOption(
      new Option('--selinux <mode>', 'write SELinux labels for z/Z: auto = when /sys/fs/selinux exists').env('HOSTVOL_SELINUX')
        .default(defaults.selinux).choices(['auto', 'on', 'off']),
    )
    .addOption(
      new Option('--propagated-mount <dir>', 'managed-plugin mode: bind every volume below this directory').env('HOSTVOL_PROPAGATED_MOUNT'),
    )
    .addOption(
      new Option('--host-paths <hostdir[=plugindir]>', 'managed-plugin mode: the host directory -o path= may use, mounted in the plugin at plugindir (default /host-paths)')
        .env('HOSTVOL_HOST_PATHS'),
    )
    .addOption(
      new Option('--state-source <hostdir>', 'managed-plugin mode: host directory of the state mount (state.source): the store to serve, and the host path docker volume inspect shows')
        .env('HOSTVOL_STATE_SOURCE'),
    )
    .addOption(
      new Option('--admin-socket <path>', `root-only admin API socket (default ${DEFAULT_ADMIN_SOCKET}; managed plugin: ${ADMIN_SOCKET_NAME} beside --socket)`)
        .env('HOSTVOL_ADMIN_SOCKET'),
    )
    .addOption(new Option('--metrics-address <host:port>', 'also serve GET /metrics on TCP (off by default)').env('HOSTVOL_METRICS_ADDRESS'))
    .addOption(new Option('--docker-host <url>', "dockerd's API socket (unix:///path; default /var/run/docker.sock)").env('DOCKER_HOST'))
    .addOption(new Option('--etcd <urls>', 'cluster mode: etcd v3 client URLs, comma-separated; volumes and mount leases are shared by every node').env('HOSTVOL_ETCD'))
    .addOption(new Option('--node-name <name>', 'this node\'s name, which its mount leases are recorded and shown under (default: the hostname)').env('HOSTVOL_NODE_NAME'))
    .addOption(new Option('--etcd-prefix <prefix>', 'cluster mode: key prefix in etcd').env('HOSTVOL_ETCD_PREFIX').default('/hostvol'))
    .addOption(
      new Option('--lease-ttl <seconds>', 'cluster mode: how long the mount leases of a node that died or is cut off outlive it')
        .env('HOSTVOL_LEASE_TTL').default(10).argParser(positiveInt),
    )
    .addOption(new Option('--etcd-cacert <file>', 'cluster mode: CA of the etcd servers (PEM)').env('HOSTVOL_ETCD_CACERT'))
    .addOption(new Option('--etcd-cert <file>', 'cluster mode: client certificate for etcd (PEM)').env('HOSTVOL_ETCD_CERT'))
    .addOption(new Option('--etcd-key <file>', 'cluster mode: client key for etcd (PEM)').env('HOSTVOL_ETCD_KEY'))
    .addOption(new Option('--etcd-timeout-ms <ms>', 'cluster mode: longest wait for etcd before a request is refused').argParser(positiveInt).hideHelp())
    .addOption(new Option('--boot-id-file <file>', 'kernel boot id, to drop leases after a reboot').env('HOSTVOL_BOOT_ID_FILE').default(defaults.bootIdFile).hideHelp())
    .addOption(new Option('--stale-sweep-ms <ms>', 'first delay of the stale-lease sweeper').argParser((v) => Number(v)).hideHelp())
    .addHelpText('after', `\nDriver options (docker volume create -d hostvol -o key=value):\n  ${describeOptions().join('\n  ')}`)
    .action(async (flags: Record<string, string | string[] | undefined>) => {
      const config: Config = {
        socket: flags.socket as string,
        dataRoot: flags.dataRoot as string,
        stateDir: flags.stateDir as string,
        allowPaths: (flags.allowPath as string[] | undefined) ?? (env.HOSTVOL_ALLOW_PATHS ?? '').split(':').filter(Boolean),
        logLevel: flags.logLevel as string,
        selinux: flags.selinux as Config['selinux'],
        propagatedMount: (flags.propagatedMount as string | undefined) || undefined,
        hostPaths: hostPathsOf(flags),
        stateSource: (flags.stateSource as string | undefined) || undefined,
        bootIdFile: flags.bootIdFile as string,
        staleSweepMs: flags.staleSweepMs as unknown as number | undefined,
        adminSocket: adminSocketOf(flags),
        metricsAddress: (flags.metricsAddress as string | undefined) || undefined,
        dockerHost: (flags.dockerHost as string | undefined) || undefined,
        nodeName: (flags.nodeName as string | undefined) || undefined,
        cluster: clusterOf(flags),
      };
      await serve(config);
    });
}

/**
 * A managed plugin's sockets live in /run/docker/plugins inside it, which dockerd maps to
 * /run/docker/plugins/<plugin-id>/ on the host: the admin socket goes there too, where the CLI finds
 * it from the plugin's name. A host service has a fixed default.
 */
function adminSocketOf(flags: Record<string, string | string[] | undefined>): string {
  if (flags.adminSocket) return flags.adminSocket as string;
  return flags.propagatedMount ? path.join(path.dirname(flags.socket as string), ADMIN_SOCKET_NAME) : DEFAULT_ADMIN_SOCKET;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

/** Without --etcd: the embedded store, nothing else changes. */
function clusterOf(flags: Record<string, unknown>): Config['cluster'] {
  const urls = String(flags.etcd ?? '').split(',').map((u) => u.trim()).filter(Boolean);
  if (urls.length === 0) return undefined;
  return {
    urls,
    node: (flags.nodeName as string | undefined) || os.hostname(),
    prefix: flags.etcdPrefix as string,
    leaseTtl: Number(flags.leaseTtl),
    cacert: flags.etcdCacert as string | undefined,
    cert: flags.etcdCert as string | undefined,
    key: flags.etcdKey as string | undefined,
    opTimeoutMs: flags.etcdTimeoutMs as number | undefined,
  };
}

function hostPathsOf(flags: Record<string, string | string[] | undefined>): Config['hostPaths'] {
  const paths = flags.hostPaths ? parseHostPaths(flags.hostPaths as string) : undefined;
  return flags.stateSource ? withStateSource(paths, flags.stateSource as string, flags.stateDir as string) : paths;
}

async function serve(config: Config): Promise<void> {
  const daemon = await startDaemon(config).catch((err) => {
    process.stderr.write(`hostvol: ${describe(err)}\n`);
    process.exit(1);
  });
  const stop = (signal: string) => {
    daemon.log.info({ signal }, 'shutting down');
    // A stuck request must not keep the process alive forever.
    setTimeout(() => process.exit(1), 20_000).unref();
    daemon.close().then(
      () => process.exit(0),
      (err) => {
        daemon.log.error({ err: describe(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

const program = new Command('hostvol')
  .description('Docker volume plugin: named volumes as host directories')
  .version(require('../package.json').version as string)
  .addCommand(serveCommand());
// `serve` must answer dockerd soon after it starts: the admin commands' modules are loaded only for them.
if (process.argv[2] !== 'serve') {
  for (const c of (require('./commands') as typeof import('./commands')).adminCommands()) program.addCommand(c);
}

program.parseAsync(process.argv).catch((err) => {
  process.stderr.write(`hostvol: ${describe(err)}\n`);
  // 130 when Ctrl-C stopped it (abortOnSignal set it), as a shell reports a command SIGINT killed.
  process.exit(process.exitCode === 130 ? 130 : 1);
});
