// The power-cut group's watchdog: every phase of a cut round runs under a deadline, so a round that
// stops making progress fails the test with the round, the phase and what is needed to replay it,
// instead of hanging until someone kills jest. The timer lives on a worker thread because a stuck
// FUSE request can block the test's own thread in a synchronous fs call, where no timer of its own
// would ever fire: the worker then SIGKILLs the layer and hostvol, which turns that call into an
// error (ENOTCONN), and the phase reports the deadline, not the error it caused.
import { Worker } from 'node:worker_threads';

const TIMER = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const [fired, described] = [new Int32Array(workerData, 0, 1), new Int32Array(workerData, 4, 1)];
let timer;
parentPort.on('message', (m) => {
  clearTimeout(timer);
  if (!m.ms) return;
  timer = setTimeout(() => {
    Atomics.store(fired, 0, m.id);
    parentPort.postMessage(m.id);
    // A responsive main thread describes the stuck state and cleans up itself; one blocked in a
    // synchronous call can do neither until what it waits on is gone.
    timer = setTimeout(() => {
      if (Atomics.load(described, 0) === m.id) return;
      fs.writeSync(2, 'power-cut watchdog: ' + m.what + ' is blocked: killing pids ' + m.pids.join(' ') + '\\n');
      for (const pid of m.pids) { try { process.kill(pid, 'SIGKILL'); } catch {} }
    }, 2000);
  }, m.ms);
});`;

export class PhaseTimeout extends Error {
  override name = 'PhaseTimeout';
}

export class Watchdog {
  private readonly worker: Worker;
  private readonly shared = new SharedArrayBuffer(8);
  /** [id of the phase whose deadline passed, id of the phase the main thread has described]. */
  private readonly fired = new Int32Array(this.shared, 0, 1);
  private readonly described = new Int32Array(this.shared, 4, 1);
  private readonly expiries = new Map<number, () => void>();
  private serial = 0;

  /**
   * `victims`: the pids the worker SIGKILLs when a phase is past its deadline and the main thread
   * is blocked (read when a phase starts); `describe`: the failure message, read when the deadline
   * passes; `cleanUp`: stops and unmounts everything the test started, before the failure is thrown.
   */
  constructor(
    private readonly victims: () => number[],
    private readonly describe: (phase: string, ms: number) => string,
    private readonly cleanUp: () => Promise<void>,
  ) {
    this.worker = new Worker(TIMER, { eval: true, workerData: this.shared });
    this.worker.unref();
    this.worker.on('message', (id: number) => this.expiries.get(id)?.());
  }

  /** Runs `fn` (sync or async) as `phase`; past `ms` it kills, cleans up and fails with `describe`. */
  async phase<T>(phase: string, ms: number, fn: () => T | Promise<T>): Promise<T> {
    const id = ++this.serial;
    let message: string | undefined;
    let expired!: () => void;
    const overrun = new Promise<'overrun'>((resolve) => (expired = () => resolve('overrun')));
    this.expiries.set(id, () => {
      message = this.describe(phase, ms); // now, while the stuck processes are still there to see
      Atomics.store(this.described, 0, id);
      expired();
    });
    this.worker.postMessage({ id, ms, what: phase, pids: this.victims() });
    let outcome: { value: T } | { error: unknown } | 'overrun';
    try {
      outcome = await Promise.race([Promise.resolve().then(fn).then((value) => ({ value }), (error: unknown) => ({ error })), overrun]);
    } finally {
      this.worker.postMessage({ id });
      this.expiries.delete(id);
    }
    // A phase blocked in a synchronous call returns (with an error) only once the worker killed what
    // it waited on: the deadline is the cause then, whatever the phase itself says.
    if (outcome === 'overrun' || Atomics.load(this.fired, 0) === id) {
      message ??= this.describe(phase, ms);
      await this.cleanUp();
      throw new PhaseTimeout(message);
    }
    if ('error' in outcome) throw outcome.error;
    return outcome.value;
  }

  close(): Promise<number> {
    return this.worker.terminate();
  }
}
