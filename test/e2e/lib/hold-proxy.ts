// A Unix-socket proxy that can freeze a reply half-way, so a test can interrupt a command at a point
// it chose rather than one a sleep hoped for: every byte from the client goes through at once; once
// a connection's request matches `match`, the reply gets `passBytes` through and then nothing more
// until release(). The command then waits on a socket that simply stays quiet, as a slow disk, a
// slow network or a long copy would leave it.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { waitFor } from './proc';

export class HoldProxy {
  private readonly server: net.Server;
  private readonly conns = new Set<net.Socket>();
  private released = false;
  private readonly waiters: Array<() => void> = [];
  /** Connections whose request matched. */
  matched = 0;
  /** Reply bytes held back so far (across connections). */
  heldBytes = 0;

  constructor(
    readonly path: string,
    private readonly target: string,
    private readonly match: RegExp,
    private readonly passBytes: number,
  ) {
    fs.rmSync(path, { force: true });
    this.server = net.createServer((client) => this.proxy(client));
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  /** Resolves once a matching request went through: its reply, whenever it comes, will be held. */
  requested(): Promise<void> {
    return waitFor(`a request matching ${this.match}`, () => this.matched > 0, 60_000, 20).then(() => undefined);
  }

  /** Resolves once part of a matching reply is being held back: the command is waiting for the rest. */
  holding(): Promise<void> {
    return waitFor(`a reply to ${this.match} to be held`, () => this.heldBytes > 0, 60_000, 20).then(() => undefined);
  }

  /** Lets every held reply through, and all later ones. */
  release(): void {
    this.released = true;
    for (const w of this.waiters.splice(0)) w();
  }

  async close(): Promise<void> {
    this.release();
    for (const c of this.conns) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.path, { force: true });
  }

  private proxy(client: net.Socket): void {
    const upstream = net.connect(this.target);
    this.conns.add(client).add(upstream);
    let request = '';
    let hold = false;
    let passed = 0;
    client.on('data', (d: Buffer) => {
      if (!hold) {
        // Headers only are looked at: enough to tell the request, small however large the body.
        request = (request + d.toString('latin1')).slice(-4096);
        if (this.match.test(request)) (hold = true), this.matched++;
      }
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (!hold || this.released) return void client.write(d);
      const n = Math.max(0, Math.min(d.length, this.passBytes - passed));
      passed += n;
      if (n > 0) client.write(d.subarray(0, n));
      if (n === d.length) return;
      // Over the limit: keep the rest, stop reading until release (the sender then backs up).
      this.heldBytes += d.length - n;
      upstream.pause();
      this.waiters.push(() => {
        client.write(d.subarray(n));
        upstream.resume();
      });
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.conns.delete(client);
      this.conns.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
    upstream.on('end', () => client.end());
  }
}
