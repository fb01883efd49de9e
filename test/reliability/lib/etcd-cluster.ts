// A real 3-member etcd cluster (Debian's etcd-server 3.4) on loopback, for the cluster suites: each
// member a child process with its own data directory in a temp dir and its own ports, so a test can
// SIGKILL a member (or two: quorum lost) and start it again on the same data.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export const ETCD = process.env.ETCD_BIN ?? '/usr/bin/etcd';

/** PEM files for a TLS cluster: clients must present a certificate signed by `ca`. */
export interface EtcdTls {
  ca: string;
  cert: string;
  key: string;
}

interface Member {
  name: string;
  client: number;
  peer: number;
  dir: string;
  child?: ChildProcess;
}

/** A free loopback port: bound to port 0, read back, released. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export class EtcdCluster {
  private constructor(
    readonly dir: string,
    private readonly members: Member[],
    readonly tls?: EtcdTls,
  ) {}

  /** Starts `size` members in `dir` and resolves once every one answers on its client port. */
  static async start(dir: string, size = 3, tls?: EtcdTls): Promise<EtcdCluster> {
    if (!fs.existsSync(ETCD)) throw new Error(`${ETCD} is missing: install Debian's etcd-server (make test-deps does)`);
    fs.mkdirSync(dir, { recursive: true });
    const members: Member[] = [];
    for (let i = 0; i < size; i++) {
      members.push({ name: `m${i + 1}`, client: await freePort(), peer: await freePort(), dir: path.join(dir, `m${i + 1}`) });
    }
    const cluster = new EtcdCluster(dir, members, tls);
    for (let i = 0; i < size; i++) cluster.startMember(i);
    await Promise.all(members.map((_, i) => cluster.waitHealthy(i)));
    return cluster;
  }

  /** Client URLs of every member, as `--etcd` takes them. */
  get urls(): string[] {
    return this.members.map((m) => `${this.tls ? 'https' : 'http'}://127.0.0.1:${m.client}`);
  }

  get size(): number {
    return this.members.length;
  }

  running(i: number): boolean {
    const c = this.members[i].child;
    return !!c && c.exitCode === null && c.signalCode === null;
  }

  startMember(i: number): void {
    const m = this.members[i];
    if (this.running(i)) return;
    const initial = this.members.map((x) => `${x.name}=http://127.0.0.1:${x.peer}`).join(',');
    const log = fs.openSync(path.join(this.dir, `${m.name}.log`), 'a');
    m.child = spawn(
      ETCD,
      [
        '--name', m.name, '--data-dir', m.dir,
        '--listen-client-urls', this.urls[i], '--advertise-client-urls', this.urls[i],
        ...(this.tls ? ['--cert-file', this.tls.cert, '--key-file', this.tls.key, '--trusted-ca-file', this.tls.ca, '--client-cert-auth'] : []),
        '--listen-peer-urls', `http://127.0.0.1:${m.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
        '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', path.basename(this.dir),
        // Short heartbeats: a lost leader is replaced in well under a second on loopback.
        '--heartbeat-interval', '50', '--election-timeout', '500',
      ],
      { stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
  }

  /** SIGKILLs member i (no clean shutdown: what a crashed or cut-off machine looks like). */
  async kill(i: number): Promise<void> {
    const c = this.members[i].child;
    if (!c || !this.running(i)) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }

  /** Starts member i again on its data and waits until it answers. */
  async restart(i: number): Promise<void> {
    this.startMember(i);
    await this.waitHealthy(i);
  }

  /** Resolves once member i answers /health with a leader (the cluster has quorum). */
  async waitHealthy(i: number, timeoutMs = 20_000): Promise<void> {
    const url = `http://127.0.0.1:${this.members[i].client}/health`;
    if (this.tls) return this.waitListening(i, timeoutMs);
    const until = Date.now() + timeoutMs;
    for (;;) {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: string };
        if (body.health === 'true') return;
      } catch {
        // not up yet
      }
      if (Date.now() > until) throw new Error(`etcd member ${this.members[i].name} not healthy after ${timeoutMs} ms (log: ${this.dir}/${this.members[i].name}.log)`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A TLS member asks for a client certificate even on /health: wait until its port accepts connections. */
  private async waitListening(i: number, timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(this.members[i].client, '127.0.0.1', () => (s.destroy(), resolve(true)));
        s.on('error', () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > until) throw new Error(`etcd member ${this.members[i].name} not listening after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.kill(i);
  }
}
