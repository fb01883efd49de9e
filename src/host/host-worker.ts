// The host worker threads: where every disk, mount and libc step of a request runs. A whole step
// (walk a path and make a directory, or clear and bind a mount point) runs as ONE synchronous job
// on a worker, so a request pays one thread hand-off for it instead of one per system call, and
// the event loop keeps answering Get and List meanwhile. Worker threads share the process's file
// descriptors, so a directory a job opened is an fd the caller can use and close.
//
// The workers' program is assembled from the source text of "parts" (functions that register jobs
// on a shared object) and run with `eval`, so it works the same from dist/ and under ts-jest. A part
// may use only its argument, `require` and what it defines itself: nothing from its module's scope.
import { Worker } from 'node:worker_threads';
import { libcPart } from './libc-part';
import { mountJobs } from './mount-jobs';
import { pathJobs } from './path-jobs';
import { treeJobs } from './tree-jobs';

/** What a part sees in the worker. */
export interface WorkerHost {
  fs: typeof import('node:fs');
  /** Jobs by name; each runs synchronously and returns a structured-cloneable result. */
  jobs: Record<string, (...args: never[]) => unknown>;
  /** An error to throw from a job: it reaches the caller as a JobFailure with these fields (`jobFields`). */
  failure(fields: { code: string } & Record<string, unknown>): Error;
  /** A Buffer over bytes that arrived as a Uint8Array (the structured clone drops the Buffer class). */
  bytes(x: string | Uint8Array): Buffer;
  /** Filled in by libcPart: one libc call, returning its result and errno. */
  call(name: string, ...args: unknown[]): { ret: number; errno: number; code: string };
  [more: string]: unknown;
}
export type Part = (h: WorkerHost) => void;

/** A job that failed: `code` is the errno name (or a job's own code), `fields` the rest of what it reported. */
export class JobFailure extends Error {
  constructor(
    readonly job: string,
    readonly code: string,
    readonly fields: Record<string, unknown>,
  ) {
    super(`${job}: ${typeof fields.message === 'string' ? fields.message : code}`);
  }
}

function workerMain(parts: Part[]): void {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { parentPort } = require('node:worker_threads');
  const h = {
    fs: require('node:fs'),
    jobs: {},
    failure: (fields: Record<string, unknown>) => Object.assign(new Error(String(fields.code)), { jobFields: fields }),
    bytes: (x: string | Uint8Array) => (typeof x === 'string' ? Buffer.from(x) : Buffer.from(x.buffer, x.byteOffset, x.length)),
  } as unknown as WorkerHost;
  for (const part of parts) part(h);
  parentPort.on('message', (m: { id: number; job: string; args: unknown[] }) => {
    try {
      const job = h.jobs[m.job] as (...a: unknown[]) => unknown;
      parentPort.postMessage({ id: m.id, ok: true, ret: job(...m.args) });
    } catch (err) {
      const e = err as Record<string, unknown>;
      const fields = (e.jobFields as Record<string, unknown>) ?? { code: typeof e.code === 'string' ? e.code : 'EIO', message: String(e.message) };
      parentPort.postMessage({ id: m.id, ok: false, fields });
    }
  });
}

const PROGRAM = `(${workerMain.toString()})([${[libcPart, pathJobs, treeJobs, mountJobs].map(String).join(',')}])`;

/** Workers: concurrent jobs (and their fsyncs, which share journal commits) run side by side, as on libuv's 4 threads. */
export const MAX_WORKERS = 4;

interface Slot {
  worker: Worker;
  busy: number;
}
interface Pending {
  job: string;
  slot: Slot;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

const slots: Slot[] = [];
const pending = new Map<number, Pending>();
let nextId = 0;

function start(): Slot {
  // trackUnmanagedFds off: a descriptor a job opens belongs to its caller, who closes it; Node must
  // neither warn when its number comes back nor close it when the worker exits.
  const worker = new Worker(PROGRAM, { eval: true, trackUnmanagedFds: false, workerData: { koffi: require.resolve('koffi') } });
  const slot: Slot = { worker, busy: 0 };
  slot.worker.on('message', (m: { id: number; ok: boolean; ret?: unknown; fields?: Record<string, unknown> }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (--slot.busy === 0) slot.worker.unref();
    if (m.ok) p.resolve(m.ret);
    else p.reject(new JobFailure(p.job, String(m.fields!.code), m.fields!));
  });
  slot.worker.on('error', (err) => {
    // A crashed worker fails what it was running; the next job starts a fresh one.
    slots.splice(slots.indexOf(slot), 1);
    for (const [id, p] of pending) {
      if (p.slot !== slot) continue;
      pending.delete(id);
      p.reject(err);
    }
  });
  slot.worker.unref();
  slots.push(slot);
  return slot;
}

/**
 * An idle worker, else a new one while there are fewer than MAX_WORKERS, else the least busy. The
 * pool grows only when jobs overlap: each worker is a V8 isolate with koffi loaded (~8 MB resident
 * and ~0.15 s of start-up CPU), which a daemon serving one request at a time never needs more than
 * once. Workers are kept once started, so the threads and descriptors stop growing at the peak.
 */
function pick(): Slot {
  return slots.find((s) => s.busy === 0) ?? (slots.length < MAX_WORKERS ? start() : slots.reduce((a, b) => (b.busy < a.busy ? b : a)));
}

/** Runs one job on a host worker; rejects with a JobFailure carrying what the job reported. */
export function runJob<T>(job: string, ...args: unknown[]): Promise<T> {
  const slot = pick();
  const id = nextId++;
  if (slot.busy++ === 0) slot.worker.ref();
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { job, slot, resolve: resolve as (v: unknown) => void, reject });
    slot.worker.postMessage({ id, job, args });
  });
}

/** How many workers run now (the pool grows with overlapping jobs, up to MAX_WORKERS). */
export function workersRunning(): number {
  return slots.length;
}

/** Stops the workers (tests and shutdown); the next job starts new ones. */
export async function stopWorkers(): Promise<void> {
  const all = slots.splice(0);
  await Promise.all(all.map((s) => s.worker.terminate()));
}
