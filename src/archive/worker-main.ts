// The archive worker's program: one job per worker (export, extract, clone), all of its
// disk work synchronous on this thread. Export output goes back in transferred 1 MiB chunks, at most
// a few ahead of the reader (a shared counter the main thread lowers as it hands chunks on: the
// worker waits on it, so a slow consumer slows the walk instead of filling memory). Extract input
// arrives as messages, each acknowledged once written, so the main thread can bound what is queued.
import { parentPort, workerData } from 'node:worker_threads';
import { CHUNK, ChunkWriter } from './chunks';
import { ArchiveError } from './names';
import { TarWriter } from './tar-writer';
import { walkTree } from './walk';
import { SLOTS, CANCELLED, IN_FLIGHT, type FromWorker, type Job, type ToWorker } from './worker-protocol';

/* eslint-disable @typescript-eslint/no-require-imports */
// What only extract and clone use is loaded by them: a worker runs one job, and an export's worker
// starts faster without the decoder and builder (loading them was part of every export's start).
const builderModule = () => require('./builder') as typeof import('./builder');

class Cancelled extends Error {}

const post = (m: FromWorker, transfer?: ArrayBuffer[]) => parentPort!.postMessage(m, transfer ?? []);

function fail(err: unknown): void {
  if (err instanceof Cancelled) return;
  const e = err as Error & { code?: string };
  post({ t: 'error', message: e.message ?? String(err), archive: err instanceof ArchiveError, code: e.code });
}

function runExport(job: Extract<Job, { op: 'export' }>): void {
  const ctl = new Int32Array(job.ctl);
  const slots = Array.from({ length: SLOTS }, (_, i) => Buffer.from(job.ring, i * CHUNK, CHUNK));
  const out = new ChunkWriter(slots, (slot, len) => {
    if (Atomics.load(ctl, CANCELLED)) throw new Cancelled();
    Atomics.add(ctl, IN_FLIGHT, 1);
    post({ t: 'chunk', slot, len });
    // The reader frees slots in the order they were posted: with fewer than SLOTS in flight, the
    // next slot (the oldest posted) is free.
    for (;;) {
      const n = Atomics.load(ctl, IN_FLIGHT);
      if (n < SLOTS) break;
      if (Atomics.load(ctl, CANCELLED)) throw new Cancelled();
      Atomics.wait(ctl, IN_FLIGHT, n, 1000);
    }
  });
  const tar = new TarWriter(out);
  const stats = walkTree(job.root, (e, fd) => tar.add(e, fd), { sparse: true });
  tar.end();
  post({ t: 'done', entries: stats.entries, bytes: stats.bytes, warnings: [...stats.warnings, ...tar.warnings] });
}

function runExtract(job: Extract<Job, { op: 'extract' }>): void {
  // Loaded while the main thread makes the staging directory, before the root arrives.
  const { TreeBuilder } = builderModule();
  const { TarDecoder } = require('./tar-decode') as typeof import('./tar-decode');
  (require('./sys') as typeof import('./sys')).declare('openat', 'close', 'futimens');
  let builder: import('./builder').TreeBuilder | null = null;
  let decoder: import('./tar-decode').TarDecoder | null = null;
  parentPort!.on('message', (m: ToWorker) => {
    try {
      if (m.t === 'root') {
        builder = new TreeBuilder(m.root);
        decoder = new TarDecoder(builder);
        return;
      }
      if (m.t === 'data') {
        decoder!.push(Buffer.from(job.ring, m.slot * CHUNK, m.len));
        post({ t: 'ack' });
        return;
      }
      decoder!.finish();
      builder!.finish();
      post({ t: 'done', entries: builder!.stats.entries, bytes: builder!.stats.bytes, warnings: [] });
    } catch (err) {
      builder?.close(true);
      fail(err);
    }
    parentPort!.close();
  });
}

function runClone(job: Extract<Job, { op: 'clone' }>): void {
  const builder = new (builderModule().TreeBuilder)(job.dst);
  try {
    const stats = walkTree(
      job.src,
      (e, fd) => {
        if (e.kind === 'file') return builder.copy(e, fd);
        builder.begin(e);
        builder.end(e);
      },
      { sparse: true },
    );
    builder.finish();
    post({ t: 'done', entries: stats.entries, bytes: builder.stats.bytes, warnings: stats.warnings });
  } finally {
    builder.close(true);
  }
}

const job = workerData.job as Job;
try {
  if (job.op === 'export') runExport(job);
  else if (job.op === 'extract') runExtract(job);
  else runClone(job);
} catch (err) {
  fail(err);
}
