// The load generator: a child process (so its CPU time is its own, measured with process.cpuUsage)
// driving N closed-loop connections over raw Unix sockets. Keep-alive mode reuses one connection per
// loop, as dockerd's pool does; newconn mode dials a fresh connection for every request, as dockerd
// does when its idle pool is empty. It also samples the server's CPU from /proc over the same window.
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { ReplyReader, requestBytes, type Reply } from './wire';

/** What one operation sends; a pair is measured as one operation (its latency is both round trips). */
export type Work =
  | { kind: 'get'; names: string[] }
  | { kind: 'list' }
  | { kind: 'createRemove'; prefix: string }
  | { kind: 'mountUnmount'; volumes: string[] };

export interface LoadSpec {
  socket: string;
  mode: 'keepalive' | 'newconn';
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** Hard cap on measured operations, so every run is bounded whatever the speed. */
  maxOps: number;
  /**
   * The window is stretched until this many operations were measured: a figure whose single operation
   * outlasts the window (List of 100k on a busy machine) still gets a value, not an empty result.
   */
  minOps: number;
  work: Work;
  /** The server process, whose CPU over the measured window is reported next to ours. */
  serverPid: number;
}

export interface LoadResult {
  ops: number;
  errors: number;
  firstError?: string;
  elapsedMs: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time over wall time in the measured window: 1.0 is one core fully busy. */
  loadgenCpu: number;
  serverCpu: number;
}

type Req = { bytes: Buffer; ok: boolean };

function plan(work: Work, loop: number, i: number): Req[] {
  switch (work.kind) {
    case 'get': {
      const name = work.names[(loop * 7919 + i * 104729) % work.names.length];
      return [{ bytes: requestBytes('/VolumeDriver.Get', { Name: name }), ok: true }];
    }
    case 'list':
      return [{ bytes: LIST, ok: true }];
    case 'createRemove': {
      const name = `${work.prefix}-${loop}-${i}`;
      return [
        { bytes: requestBytes('/VolumeDriver.Create', { Name: name, Opts: null }), ok: true },
        { bytes: requestBytes('/VolumeDriver.Remove', { Name: name }), ok: true },
      ];
    }
    case 'mountUnmount': {
      const Name = work.volumes[loop % work.volumes.length];
      const ID = `${process.pid.toString(16)}${loop.toString(16).padStart(4, '0')}${i.toString(16).padStart(8, '0')}`.padEnd(64, 'a');
      return [
        { bytes: requestBytes('/VolumeDriver.Mount', { ID, Name }), ok: true },
        { bytes: requestBytes('/VolumeDriver.Unmount', { ID, Name }), ok: true },
      ];
    }
  }
}
const LIST = requestBytes('/VolumeDriver.List', {});

/** A kept-alive connection with one request in flight at a time. */
class Conn {
  private readonly reader = new ReplyReader();
  private waiting: { resolve(r: Reply): void; reject(e: Error): void } | undefined;
  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (chunk: Buffer) => {
      try {
        const reply = this.reader.push(chunk);
        if (reply && this.waiting) {
          const w = this.waiting;
          this.waiting = undefined;
          w.resolve(reply);
        }
      } catch (err) {
        this.fail(err as Error);
      }
    });
    sock.on('error', (err) => this.fail(err));
    sock.on('close', () => this.fail(new Error('connection closed by the server')));
  }

  static open(path: string): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(path);
      sock.once('connect', () => {
        sock.off('error', reject);
        sock.setNoDelay(true);
        resolve(new Conn(sock));
      });
      sock.once('error', reject);
    });
  }

  send(bytes: Buffer): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.sock.write(bytes);
    });
  }

  close(): void {
    this.sock.removeAllListeners('close');
    this.sock.destroy();
  }

  private fail(err: Error): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(err);
  }
}

function cpuTicks(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

function isOk(reply: Reply): boolean {
  // A success never starts with {"Err" (hostvol and the floor both put Err first when they fail).
  return reply.status === 200 && !(reply.body.length > 6 && reply.body.toString('latin1', 0, 6) === '{"Err"');
}

export async function generate(spec: LoadSpec): Promise<LoadResult> {
  const latencies = new Float64Array(spec.maxOps);
  let ops = 0;
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const measureFrom = start + spec.warmupMs;
  const deadline = measureFrom + spec.durationMs;
  let cpu0: NodeJS.CpuUsage | undefined;
  let server0 = NaN;
  let lastDone = measureFrom;
  const startMeasuring = () => {
    cpu0 = process.cpuUsage();
    server0 = cpuTicks(spec.serverPid);
  };
  const measureTimer = setTimeout(startMeasuring, spec.warmupMs);

  const note = (err: unknown) => {
    errors++;
    firstError ??= err instanceof Error ? err.message : String(err);
  };

  const loop = async (id: number) => {
    let conn: Conn | undefined;
    for (let i = 0; ; i++) {
      const began = performance.now();
      if ((began >= deadline && ops >= spec.minOps) || ops >= spec.maxOps) break;
      try {
        for (const req of plan(spec.work, id, i)) {
          if (spec.mode === 'newconn') {
            const c = await Conn.open(spec.socket);
            try {
              const reply = await c.send(req.bytes);
              if (req.ok && !isOk(reply)) note(reply.body.toString('utf8').slice(0, 200));
            } finally {
              c.close();
            }
          } else {
            conn ??= await Conn.open(spec.socket);
            const reply = await conn.send(req.bytes);
            if (req.ok && !isOk(reply)) note(reply.body.toString('utf8').slice(0, 200));
          }
        }
      } catch (err) {
        note(err);
        conn?.close();
        conn = undefined;
      }
      const done = performance.now();
      if (began >= measureFrom && ops < spec.maxOps) {
        latencies[ops++] = done - began;
        lastDone = done;
      }
    }
    conn?.close();
  };
  await Promise.all(Array.from({ length: spec.concurrency }, (_, id) => loop(id)));
  clearTimeout(measureTimer);
  if (!cpu0) startMeasuring(); // the run ended inside the warm-up (only when it failed early)
  const cpu = process.cpuUsage(cpu0);
  const server1 = cpuTicks(spec.serverPid);
  const elapsedMs = Math.max(lastDone - measureFrom, 1e-3);
  const sorted = latencies.subarray(0, ops).sort();
  const pct = (p: number) => (ops ? sorted[Math.min(ops - 1, Math.floor(p * ops))] : NaN);
  return {
    ops,
    errors,
    firstError,
    elapsedMs,
    opsPerSec: (ops / elapsedMs) * 1000,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    loadgenCpu: (cpu.user + cpu.system) / 1000 / elapsedMs,
    serverCpu: (((server1 - server0) * 10) / elapsedMs),
  };
}

/** Runs one load in a fresh child process and returns its result. */
export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: LoadResult | undefined;
    const limit = setTimeout(() => child.kill('SIGKILL'), spec.warmupMs + spec.durationMs + 60_000);
    child.once('message', (m) => (result = m as LoadResult));
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(limit);
      if (result) resolve(result);
      else reject(new Error(`load generator exited with ${code} and no result`));
    });
    child.send(spec);
  });
}

if (require.main === module && process.argv[2] === '--child') {
  process.once('message', (spec) => {
    generate(spec as LoadSpec).then(
      (r) => process.send!(r, () => process.disconnect()),
      (err) => {
        process.stderr.write(`load generator: ${err instanceof Error ? err.stack : err}\n`);
        process.exit(1);
      },
    );
  });
}
