// `import`: an archive (plain, gzip or zstd) read from a stream into a volume's directory, all or
// nothing (staging.ts). The bytes are copied into a ring of shared slots that the extract worker
// reads in place (no buffer is allocated per chunk: see chunks.ts for what that cost); the stream is
// read only as fast as the worker frees slots, so a fast sender waits for the disk.
import { PassThrough, type Readable } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { CHUNK } from './chunks';
import { decompressed } from './compress';
import { replaceContent } from './staging';
import { errorFrom, startWorker } from './worker-host';
import { EXTRACT_SLOTS, type FromWorker, type ToWorker } from './worker-protocol';

export interface ImportResult {
  entries: number;
  /** Bytes of file content written. */
  bytes: number;
}

/** An extract worker, started before it knows where to extract: see importArchive. */
interface Extractor {
  w: Worker;
  ring: SharedArrayBuffer;
}

function startExtractor(): Extractor {
  const ring = new SharedArrayBuffer(EXTRACT_SLOTS * CHUNK);
  return { w: startWorker({ op: 'extract', ring }), ring };
}

/** Extracts the (decompressed) archive `input` with `ex` into the empty directory reached by `root`. */
async function extractInto(ex: Extractor, root: string, input: Readable, signal?: AbortSignal): Promise<ImportResult> {
  const { w, ring } = ex;
  let inFlight = 0;
  let wake: (() => void) | null = null;
  let failure: Error | null = null;
  let result: ImportResult | null = null;
  const settled = new Promise<void>((resolve) => {
    w.on('message', (m: FromWorker) => {
      if (m.t === 'ack') inFlight--;
      else if (m.t === 'done') (result = { entries: m.entries, bytes: m.bytes }), resolve();
      else if (m.t === 'error') (failure ??= errorFrom(m)), resolve();
      wake?.();
    });
    w.on('error', (err) => ((failure ??= err), resolve(), wake?.()));
    w.on('exit', () => ((failure ??= result ? null : new Error('the extract worker stopped early')), resolve(), wake?.()));
  });
  const send = (m: ToWorker) => w.postMessage(m);
  send({ t: 'root', root });
  const onAbort = () => {
    failure ??= new Error('import cancelled; nothing was imported');
    wake?.();
  };
  signal?.addEventListener('abort', onAbort);
  if (signal?.aborted) onAbort();
  try {
    // Slots are posted in order and freed in order: with fewer than EXTRACT_SLOTS in flight, the
    // current one is free. Chunks come by 'data' events (an async iterator would join buffered chunks
    // into fresh buffers); the source is paused while the ring is full and resumed on an ack.
    const src = await decompressed(input);
    const view = Buffer.from(ring);
    let slot = 0;
    let used = 0;
    const waiting: Buffer[] = [];
    const flush = () => {
      if (!used) return;
      inFlight++;
      send({ t: 'data', slot, len: used });
      slot = (slot + 1) % EXTRACT_SLOTS;
      used = 0;
    };
    const pump = () => {
      while (waiting.length && !failure) {
        if (inFlight >= EXTRACT_SLOTS) return src.pause();
        const c = waiting[0];
        const n = Math.min(c.length, CHUNK - used);
        c.copy(view, slot * CHUNK + used, 0, n);
        used += n;
        if (n === c.length) waiting.shift();
        else waiting[0] = c.subarray(n);
        if (used === CHUNK) flush();
      }
      if (!failure) src.resume();
    };
    await new Promise<void>((resolve) => {
      let ended = false;
      const check = () => {
        if (failure) return resolve();
        pump();
        if (ended && !waiting.length) resolve();
      };
      wake = check;
      src.on('data', (c: Buffer) => {
        waiting.push(c);
        pump();
      });
      src.once('end', () => ((ended = true), check()));
      src.once('error', (err) => ((failure ??= err), resolve()));
      src.resume(); // paused after its first bytes were looked at
    });
    wake = null;
    if (!failure) {
      flush();
      send({ t: 'end' });
      await settled;
    }
    if (failure) throw failure;
    return result!;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!result) await w.terminate();
  }
}

/**
 * Imports the archive `input` into the volume directory `target`: into an empty one, or, with
 * `force`, replacing what it holds. On any failure the volume is left exactly as it was.
 */
export async function importArchive(target: string, input: Readable, opts: { force?: boolean; what?: string; signal?: AbortSignal } = {}): Promise<ImportResult> {
  // Taken at once (it flows into a buffer that holds back when full): a child process's stdout left
  // unread while the staging directory is prepared would be drained and discarded by Node when the
  // child exits (child_process flushes unread stdio on exit).
  const held = input.pipe(new PassThrough({ highWaterMark: 1 << 20 }));
  input.on('error', (err) => held.destroy(err));
  // The worker starts (a thread, the decoder, koffi) while the staging directory is being made: one
  // after the other, they were a tenth of a second of every import before its first byte was written.
  const ex = startExtractor();
  try {
    return await replaceContent(target, { force: opts.force, what: opts.what ?? target }, (staging) => extractInto(ex, staging, held, opts.signal));
  } finally {
    // Gone already after a finished extract; still waiting for its root when staging failed.
    await ex.w.terminate();
  }
}
