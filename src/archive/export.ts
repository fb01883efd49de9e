// `export`: a volume's tree as a pax archive stream, made on a worker thread (worker-main.ts) and
// read here as a Readable that pulls chunks only as fast as its consumer takes them.
import { Readable } from 'node:stream';
import { compressor, type Compression } from './compress';
import { errorFrom, startWorker } from './worker-host';
import { CANCELLED, IN_FLIGHT, type FromWorker } from './worker-protocol';

export interface ExportResult {
  entries: number;
  /** Bytes of file content read (before headers and compression). */
  bytes: number;
  /** Entries left out or changed while read (sockets, other mounts, files that shrank). */
  warnings: string[];
}

export interface ExportStream {
  /** The archive (compressed as asked). Destroying it stops the walk. */
  stream: Readable;
  /** Settles when the walk ends: with its figures, or with the error that also destroyed `stream`. */
  done: Promise<ExportResult>;
}

/** The uncompressed tar stream of the tree at `root` (a directory path the caller verified, or /proc/self/fd/N). */
function tarStream(root: string): ExportStream {
  const ctl = new Int32Array(new SharedArrayBuffer(8));
  const w = startWorker({ op: 'export', root, ctl: ctl.buffer as SharedArrayBuffer });
  const queue: Buffer[] = [];
  let wanted = false;
  let finished = false;
  let resolve!: (r: ExportResult) => void;
  let reject!: (e: Error) => void;
  const done = new Promise<ExportResult>((res, rej) => ((resolve = res), (reject = rej)));
  done.catch(() => undefined); // observed through the stream as well
  const taken = () => {
    Atomics.sub(ctl, IN_FLIGHT, 1);
    Atomics.notify(ctl, IN_FLIGHT);
  };
  const stream = new Readable({
    highWaterMark: 1 << 20,
    read() {
      const next = queue.shift();
      if (next) {
        taken();
        this.push(next);
      } else if (finished) this.push(null);
      else wanted = true;
    },
    destroy(err, cb) {
      Atomics.store(ctl, CANCELLED, 1);
      Atomics.notify(ctl, IN_FLIGHT);
      if (!finished) void w.terminate();
      if (!finished) reject(err ?? new Error('export cancelled'));
      cb(err);
    },
  });
  w.on('message', (m: FromWorker) => {
    if (m.t === 'chunk') {
      const b = Buffer.from(m.buf);
      if (wanted) {
        wanted = false;
        taken();
        stream.push(b);
      } else queue.push(b);
    } else if (m.t === 'done') {
      finished = true;
      resolve({ entries: m.entries, bytes: m.bytes, warnings: m.warnings });
      if (wanted && queue.length === 0) stream.push(null);
    } else if (m.t === 'error') {
      const err = errorFrom(m);
      reject(err);
      finished = true;
      stream.destroy(err);
    }
  });
  w.on('error', (err) => {
    finished = true;
    reject(err);
    stream.destroy(err);
  });
  return { stream, done };
}

/** The tree at `root` as an archive, compressed with `compress` (default none). */
export function exportTree(root: string, opts: { compress?: Compression } = {}): ExportStream {
  const plain = tarStream(root);
  if (!opts.compress || opts.compress === 'none') return plain;
  const c = compressor(opts.compress);
  plain.stream.on('error', (err) => c.destroy(err));
  c.on('close', () => plain.stream.destroy());
  return { stream: plain.stream.pipe(c), done: plain.done };
}
