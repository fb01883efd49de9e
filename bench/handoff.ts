// The cost of one hand-off to a worker thread and back, measured in the bench process: a job that
// does nothing, posted to a worker and awaited, in a tight loop and each after the thread has idled
// `idleMs`. hostvol pays one such round trip per step it runs off its event loop (the off-loop floor,
// floor-offloop.ts, pays the same ones), so this is the unit the durable figures' gap is made of.
import { Worker } from 'node:worker_threads';
import { median, sleep } from './stats';

const ECHO = "require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m));";

export async function measureHandoff(n = 200, idleMs = 5): Promise<{ tightUs: number; idleUs: number; idleMs: number; n: number }> {
  const w = new Worker(ECHO, { eval: true });
  try {
    const once = () =>
      new Promise<number>((resolve) => {
        const t0 = performance.now();
        w.once('message', () => resolve((performance.now() - t0) * 1000));
        w.postMessage(0);
      });
    for (let i = 0; i < 20; i++) await once(); // the thread started and its code warm
    const tight: number[] = [];
    for (let i = 0; i < n; i++) tight.push(await once());
    const idle: number[] = [];
    for (let i = 0; i < n; i++) {
      await sleep(idleMs);
      idle.push(await once());
    }
    return { tightUs: median(tight), idleUs: median(idle), idleMs, n };
  } finally {
    await w.terminate();
  }
}
