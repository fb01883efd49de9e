// `import`: an archive (plain, gzip or zstd) read from a stream into a volume's directory, all or
// nothing (staging.ts). The bytes go to the extract worker in batches of at least 256 KiB, at most a
// few batches ahead of what it has written: the stream is read only as fast as the disk takes it.
import { PassThrough, type Readable } from 'node:stream';
import { decompressed } from './compress';
import { replaceContent } from './staging';
import { errorFrom, startWorker } from './worker-host';
import type { FromWorker, ToWorker } from './worker-protocol';

export interface ImportResult {
  entries: number;
  /** Bytes of file content written. */
  bytes: number;
}

const BATCH = 256 * 1024;
const AHEAD = 4;

/** Extracts the (decompressed) archive `input` into the empty directory reached by `root`. */
export async function extractInto(root: string, input: Readable, signal?: AbortSignal): Promise<ImportResult> {
  const w = startWorker({ op: 'extract', root });
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
  const send = (m: ToWorker, transfer: ArrayBuffer[] = []) => w.postMessage(m, transfer);
  const onAbort = () => {
    failure ??= new Error('import cancelled; nothing was imported');
    wake?.();
  };
  signal?.addEventListener('abort', onAbort);
  if (signal?.aborted) onAbort();
  try {
    let batch: Buffer[] = [];
    let size = 0;
    const flush = async () => {
      if (!size) return;
      // A buffer that owns its whole ArrayBuffer moves to the worker without a copy; anything else
      // (a slice of Node's shared pool must never be transferred) is gathered into one that does.
      const owns = (b: Buffer) => b.byteOffset === 0 && b.buffer.byteLength === b.length;
      let b = batch.length === 1 ? batch[0] : null;
      if (!b || !owns(b)) {
        b = Buffer.allocUnsafeSlow(size);
        let at = 0;
        for (const c of batch) at += c.copy(b, at);
      }
      batch = [];
      size = 0;
      inFlight++;
      send({ t: 'data', buf: b }, [b.buffer as ArrayBuffer]);
      while (inFlight >= AHEAD && !failure) await new Promise<void>((r) => (wake = r));
    };
    for await (const chunk of await decompressed(input)) {
      if (failure) break;
      batch.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size >= BATCH) await flush();
    }
    if (!failure) {
      await flush();
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
export function importArchive(target: string, input: Readable, opts: { force?: boolean; what?: string; signal?: AbortSignal } = {}): Promise<ImportResult> {
  // Taken at once (it flows into a buffer that holds back when full): a child process's stdout left
  // unread while the staging directory is prepared would be drained and discarded by Node when the
  // child exits (child_process flushes unread stdio on exit).
  const held = input.pipe(new PassThrough({ highWaterMark: 1 << 20 }));
  input.on('error', (err) => held.destroy(err));
  return replaceContent(target, { force: opts.force, what: opts.what ?? target }, (staging) => extractInto(staging, held, opts.signal));
}
