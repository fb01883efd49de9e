// dockerd's Engine API over its Unix socket (undici): the few calls hostvol needs to see and act
// through dockerd (which containers use a volume, pause them, create and remove volumes so that
// dockerd knows about it, list dangling ones). An unreachable dockerd is an error that names the
// socket and what needed it, since the operator can only fix it knowing both.
import { Agent, request } from 'undici';
import { ConflictError, HostvolError, NotFoundError, describe } from '../errors';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

/** dockerd could not be reached at all (as opposed to answering with an error). */
export class DockerUnreachableError extends HostvolError {
  override name = 'DockerUnreachableError';
}

/** Container states in which its mounts are in place. */
export const LIVE = ['running', 'paused', 'restarting'];

export interface ContainerUse {
  id: string;
  name: string;
  /** dockerd's State: running, paused, exited, created, restarting, removing, dead. */
  state: string;
  /** Whether this container mounts the volume read-write. */
  rw: boolean;
  /** Where the volume is mounted inside the container. */
  destination: string;
}

export interface DockerVolume {
  Name: string;
  Driver: string;
  Mountpoint: string;
  Labels: Record<string, string> | null;
  Options: Record<string, string> | null;
  CreatedAt?: string;
}

/** `--docker-host` / DOCKER_HOST: a unix:// URL or a plain path; nothing else is served over a socket. */
export function dockerSocketOf(host: string | undefined): string {
  if (!host) return DEFAULT_DOCKER_SOCKET;
  if (host.startsWith('unix://')) return host.slice('unix://'.length);
  if (host.startsWith('/')) return host;
  throw new HostvolError(`docker host ${JSON.stringify(host)} is not a Unix socket; give unix:///path/to/docker.sock (TCP is not supported)`);
}

export class DockerClient {
  private readonly agent: Agent;

  constructor(readonly socket: string) {
    this.agent = new Agent({ connect: { socketPath: socket } });
  }

  /** One API call; `why` names the command that needed dockerd, for the error when it is not there. */
  async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, why: string, body?: unknown): Promise<T> {
    let res;
    try {
      res = await request(`http://docker${path}`, {
        method,
        dispatcher: this.agent,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new DockerUnreachableError(
        `${why} needs dockerd, which does not answer at ${this.socket} (${code ?? describe(err)}); ` +
          'start dockerd, or point --docker-host or DOCKER_HOST at its socket (unix:///path)',
      );
    }
    const text = await res.body.text();
    if (res.statusCode >= 400) {
      let message = text;
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // not JSON: the text itself is the message
      }
      const what = `dockerd refused ${method} ${path.split('?')[0]}: ${message.trim()}`;
      if (res.statusCode === 404) throw Object.assign(new HostvolError(what), { status: 404 });
      if (res.statusCode === 409) throw new ConflictError(what);
      throw new HostvolError(what);
    }
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /** Every container (any state) that mounts volume `name`, with its state and whether the mount is RW. */
  async containersUsing(name: string, why: string): Promise<ContainerUse[]> {
    const filters = encodeURIComponent(JSON.stringify({ volume: [name] }));
    const list = await this.call<Array<{ Id: string; Names: string[]; State: string; Mounts: Array<{ Type: string; Name?: string; RW: boolean; Destination: string }> }>>(
      'GET', `/containers/json?all=1&filters=${filters}`, why,
    );
    const out: ContainerUse[] = [];
    for (const c of list) {
      for (const m of c.Mounts) {
        if (m.Type !== 'volume' || m.Name !== name) continue;
        out.push({ id: c.Id, name: (c.Names[0] ?? c.Id).replace(/^\//, ''), state: c.State, rw: m.RW, destination: m.Destination });
      }
    }
    return out;
  }

  /** Names of the volumes that containers dockerd runs (running, paused or restarting) have mounted. */
  async volumesInUse(why: string): Promise<string[]> {
    const filters = encodeURIComponent(JSON.stringify({ status: LIVE }));
    const list = await this.call<Array<{ Mounts: Array<{ Type: string; Name?: string }> }>>('GET', `/containers/json?filters=${filters}`, why);
    return [...new Set(list.flatMap((c) => c.Mounts.filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name!)))];
  }

  pause(id: string, why: string): Promise<void> {
    return this.call('POST', `/containers/${encodeURIComponent(id)}/pause`, why);
  }

  unpause(id: string, why: string): Promise<void> {
    return this.call('POST', `/containers/${encodeURIComponent(id)}/unpause`, why);
  }

  /** Creates the volume through dockerd (so dockerd records it), with driver options and labels. */
  createVolume(name: string, driver: string, opts: Record<string, string>, why: string, labels: Record<string, string> = {}): Promise<DockerVolume> {
    return this.call('POST', '/volumes/create', why, { Name: name, Driver: driver, DriverOpts: opts, Labels: labels });
  }

  /** Removes the volume through dockerd; a volume a container uses is a ConflictError, an unknown one a NotFoundError. */
  async removeVolume(name: string, why: string): Promise<void> {
    try {
      await this.call('DELETE', `/volumes/${encodeURIComponent(name)}`, why);
    } catch (err) {
      if ((err as { status?: number }).status === 404) throw new NotFoundError(name);
      throw err;
    }
  }

  /** Volumes dockerd knows, filtered as `docker volume ls -f` does (driver, dangling, label, name). */
  async listVolumes(filters: Record<string, string[]>, why: string): Promise<DockerVolume[]> {
    const q = Object.keys(filters).length ? `?filters=${encodeURIComponent(JSON.stringify(filters))}` : '';
    const res = await this.call<{ Volumes: DockerVolume[] | null }>('GET', `/volumes${q}`, why);
    return res.Volumes ?? [];
  }

  /** A managed plugin's full ID, from its name (with or without :tag). */
  async pluginId(name: string, why: string): Promise<string> {
    try {
      return (await this.call<{ Id: string }>('GET', `/plugins/${encodeURIComponent(name)}/json`, why)).Id;
    } catch (err) {
      if ((err as { status?: number }).status === 404) {
        throw new HostvolError(`no plugin named "${name}" is installed in dockerd at ${this.socket}; see docker plugin ls`);
      }
      throw err;
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
