// Several `hostvol serve --etcd …` nodes (child processes of dist/cli.js, each with its own socket,
// state directory and --node-name) sharing one data root and one real 3-member etcd cluster, as the
// nodes of a Swarm sharing an NFS export would. A node can be SIGKILLed and started again.
import * as fs from 'node:fs';
import { isErr, isOk, type Reply } from './client';
import { EtcdCluster } from './etcd-cluster';
import { Sandbox } from './sandbox';
import { Serve, type ServeConfig } from './serve';

export interface ClusterOptions {
  nodes?: number;
  /** --lease-ttl, seconds. */
  ttl?: number;
  /** --etcd-timeout-ms: how long a node waits for etcd before refusing. */
  timeoutMs?: number;
}

export class HostvolCluster {
  readonly nodes: Serve[] = [];
  readonly configs: ServeConfig[] = [];

  private constructor(
    readonly sb: Sandbox,
    readonly etcd: EtcdCluster,
    readonly dataRoot: string,
  ) {}

  static async start(tag: string, opts: ClusterOptions = {}): Promise<HostvolCluster> {
    const sb = new Sandbox(tag);
    let etcd: EtcdCluster | undefined;
    try {
      etcd = await EtcdCluster.start(sb.dir('etcd'));
      const c = new HostvolCluster(sb, etcd, sb.dir('shared', 'volumes'));
      const bootIdFile = sb.bootId();
      for (let i = 0; i < (opts.nodes ?? 2); i++) {
        const name = `node${i + 1}`;
        c.configs.push({
          socket: sb.path(name, 'run', 'hostvol.sock'),
          dataRoot: c.dataRoot,
          stateDir: sb.path(name, 'state'),
          bootIdFile,
          logFile: sb.path(`${name}.log`),
          extraArgs: [
            '--etcd', etcd.urls.join(','), '--node-name', name, '--etcd-prefix', `/${tag}`,
            '--lease-ttl', String(opts.ttl ?? 2), '--etcd-timeout-ms', String(opts.timeoutMs ?? 3000), '--stale-sweep-ms', '3600000',
          ],
        });
      }
      // One after another: each checks the data-root markers of the nodes already up.
      for (const cfg of c.configs) c.nodes.push(await Serve.start(cfg));
      return c;
    } catch (err) {
      await etcd?.stop();
      sb.cleanup();
      throw err;
    }
  }

  node(i: number): Serve {
    return this.nodes[i];
  }

  /** POSTs to node i (0-based). */
  call(i: number, endpoint: string, body: unknown, timeoutMs = 30_000): Promise<Reply> {
    return this.nodes[i].client.post(endpoint, body, { timeoutMs });
  }

  async kill(i: number): Promise<void> {
    await this.nodes[i].kill('SIGKILL');
  }

  async restart(i: number): Promise<void> {
    if (this.nodes[i].alive()) await this.nodes[i].kill('SIGTERM');
    this.nodes[i] = await Serve.start(this.configs[i]);
  }

  /** When node i logged that it lost its etcd lease (epoch ms), over every process it ran as. */
  leaseLosses(i: number): number[] {
    const text = fs.existsSync(this.configs[i].logFile) ? fs.readFileSync(this.configs[i].logFile, 'utf8') : '';
    return text
      .split('\n')
      .filter((l) => l.includes('this node lost its etcd lease'))
      .map((l) => (JSON.parse(l) as { time: number }).time);
  }

  logs(): string {
    return this.nodes.map((n, i) => `--- node${i + 1}\n${n.logTail(15)}`).join('\n');
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) await n.kill('SIGKILL').catch(() => undefined);
    await this.etcd.stop();
    this.sb.cleanup();
  }
}

/** The Err of a reply, or '' when it succeeded; throws on anything else (no reply, not JSON). */
export function errOf(r: Reply): string {
  if (isOk(r)) return '';
  if (isErr(r)) return r.json.Err as string;
  throw new Error(`unexpected reply ${r.status}: ${r.text}`);
}

export async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<number> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - t0;
}
