// `export`: a volume's tree as a pax archive, made on a worker thread (worker-main.ts) into a ring of
// shared slots. exportTo() writes each slot to the destination as it is (no copy, no allocation)
// and frees it when the destination's write callback says it is done with those bytes; so the walk
// runs at most a ring ahead of the consumer, and a slow consumer slows the walk instead of filling
// memory.
import { Transform, type Writable } from 'node:stream';
import { CHUNK } from './chunks';
import type { Compression } from './compress';
import { errorFrom, startWorker } from './worker-host';
import { CANCELLED, IN_FLIGHT, SLOTS, type FromWorker } from './worker-protocol';

export interface ExportResult {
  entries: number;
  /** Bytes of file content read (before headers and compression). */
  bytes: number;
  /** Entries left out or changed while read (sockets, other mounts, files that shrank). */
  warnings: string[];
}

/** Writes the uncompressed tar stream of the tree at `root` into `dest`, and ends it. */
function tarTo(root: string, dest: Writable, signal?: AbortSignal, onBytes?: (n: number) => void): Promise<ExportResult> {
  const ctl = new Int32Array(new SharedArrayBuffer(8));
  const ring = new SharedArrayBuffer(SLOTS * CHUNK);
  const w = startWorker({ op: 'export', root, ctl: ctl.buffer as SharedArrayBuffer, ring });
  const stop = () => {
    Atomics.store(ctl, CANCELLED, 1);
    Atomics.notify(ctl, IN_FLIGHT);
    void w.terminate();
  };
  return new Promise<ExportResult>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      stop();
      signal?.removeEventListener('abort', onAbort);
      dest.destroy(err);
      reject(err);
    };
    const onAbort = () => fail(new Error('export cancelled'));
    signal?.addEventListener('abort', onAbort);
    if (signal?.aborted) onAbort();
    dest.on('error', fail);
    dest.on('close', () => {
      if (!dest.writableFinished) fail(new Error('the export destination closed before the archive was complete'));
    });
    w.on('message', (m: FromWorker) => {
      if (settled) return;
      if (m.t === 'chunk') {
        // The slot's own memory; freed (and the worker woken) once dest no longer needs it.
        onBytes?.(m.len);
        dest.write(Buffer.from(ring, m.slot * CHUNK, m.len), () => {
          Atomics.sub(ctl, IN_FLIGHT, 1);
          Atomics.notify(ctl, IN_FLIGHT);
        });
      } else if (m.t === 'done') {
        dest.end(() => {
          if (settled) return;
          settled = true;
          signal?.removeEventListener('abort', onAbort);
          resolve({ entries: m.entries, bytes: m.bytes, warnings: m.warnings });
        });
      } else if (m.t === 'error') fail(errorFrom(m));
    });
    w.on('error', fail);
  });
}

/**
 * Writes the tree at `root` (a directory the caller verified, or /proc/self/fd/N) as an archive into
 * `dest`, compressed as asked, and ends `dest`. Rejects (and destroys `dest`) on the first failure,
 * on `signal`, or when `dest` closes early; the walk stops then. `onBytes` counts the tar bytes
 * (before compression) as they are handed on.
 */
export function exportTo(root: string, dest: Writable, opts: { compress?: Compression; signal?: AbortSignal; onBytes?: (n: number) => void } = {}): Promise<ExportResult> {
  if (!opts.compress || opts.compress === 'none') return tarTo(root, dest, opts.signal, opts.onBytes);
  // Loaded when asked for: zlib and child_process cost ~0.1 s to load, a twentieth of a 1 GB export.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { compressor } = require('./compress') as typeof import('./compress');
  const c = compressor(opts.compress);
  c.pipe(dest);
  dest.on('error', (err) => c.destroy(err));
  const finished = new Promise<void>((resolve, reject) => {
    dest.on('finish', resolve);
    dest.on('close', () => (dest.writableFinished ? resolve() : reject(new Error('the export destination closed early'))));
    c.on('error', reject);
  });
  return tarTo(root, c, opts.signal, opts.onBytes).then(async (r) => {
    await finished;
    return r;
  });
}

/**
 * The archive as a Readable (for callers that want to pull); destroying it stops the walk. Each
 * chunk is copied out of the ring here, as a reader may hold it for as long as it likes.
 */
export function exportTree(root: string, opts: { compress?: Compression } = {}): { stream: Transform; done: Promise<ExportResult> } {
  const stream = new Transform({ highWaterMark: 1 << 20, transform: (chunk: Buffer, _enc, cb) => cb(null, Buffer.from(chunk)) });
  const ac = new AbortController();
  stream.on('close', () => ac.abort());
  const done = exportTo(root, stream, { ...opts, signal: ac.signal });
  done.catch(() => undefined); // also seen through the stream
  return { stream, done };
}
