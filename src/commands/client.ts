// The CLI's client of hostvol's admin socket (undici over a Unix socket). Which socket: --admin-socket,
// else HOSTVOL_ADMIN_SOCKET, else for a managed plugin (--plugin NAME) the one dockerd gave the plugin
// at /run/docker/plugins/<plugin-id>/admin.sock, else the legacy default /run/hostvol/admin.sock.
import * as path from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { HostvolError, describe } from '../errors';
import { DockerClient, dockerSocketOf } from '../admin/docker';
import { ADMIN_SOCKET_NAME, DEFAULT_ADMIN_SOCKET, PLUGIN_SOCKETS_DIR } from '../admin/socket-paths';

export { ADMIN_SOCKET_NAME, DEFAULT_ADMIN_SOCKET, PLUGIN_SOCKETS_DIR };

export interface ConnectFlags {
  adminSocket?: string;
  plugin?: string;
  dockerHost?: string;
}

/** A plugin reference as dockerd names its volumes' driver: a bare name gets the :latest tag. */
export function pluginRef(name: string): string {
  return /:[^/]+$/.test(name) ? name : `${name}:latest`;
}

export async function findAdminSocket(flags: ConnectFlags, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (flags.adminSocket) return flags.adminSocket;
  if (flags.plugin) {
    const docker = new DockerClient(dockerSocketOf(flags.dockerHost ?? env.DOCKER_HOST));
    try {
      const id = await docker.pluginId(flags.plugin, `finding the admin socket of plugin ${flags.plugin}`);
      return path.join(PLUGIN_SOCKETS_DIR, id, ADMIN_SOCKET_NAME);
    } finally {
      await docker.close();
    }
  }
  return env.HOSTVOL_ADMIN_SOCKET || DEFAULT_ADMIN_SOCKET;
}

export class AdminClient {
  private readonly agent: Agent;

  constructor(readonly socket: string) {
    this.agent = new Agent({ connect: { socketPath: socket } });
  }

  static async connect(flags: ConnectFlags): Promise<AdminClient> {
    return new AdminClient(await findAdminSocket(flags));
  }

  /** The raw response, for streaming routes (export/import); errors reaching the socket are explained. */
  async request(method: Dispatcher.HttpMethod, route: string, opts: { body?: Dispatcher.DispatchOptions['body']; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Dispatcher.ResponseData> {
    try {
      return await request(`http://hostvol${route}`, { method, dispatcher: this.agent, ...opts });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES' || code === 'EPERM') {
        throw new HostvolError(
          `cannot reach hostvol's admin socket ${this.socket} (${code}): ` +
            (code === 'EACCES' || code === 'EPERM'
              ? 'it is root only; run this as root'
              : 'is hostvol serve running? For a managed plugin pass --plugin NAME; else --admin-socket or HOSTVOL_ADMIN_SOCKET'),
        );
      }
      throw new HostvolError(`admin request ${method} ${route} on ${this.socket} failed: ${describe(err)}`);
    }
  }

  /** A JSON call: the parsed reply, or the admin API's Err as a HostvolError. */
  async json<T>(method: 'GET' | 'POST' | 'DELETE', route: string, body?: unknown): Promise<T> {
    const res = await this.request(method, route, body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const text = await res.body.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new HostvolError(`admin API answered ${method} ${route} with HTTP ${res.statusCode} and no JSON: ${text.slice(0, 200)}`);
    }
    if (res.statusCode >= 400) throw Object.assign(new HostvolError((parsed as { Err?: string }).Err ?? text), { status: res.statusCode });
    return parsed as T;
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
