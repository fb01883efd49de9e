// Compression of archives: gzip through Node's zlib, zstd through /usr/bin/zstd (Node 20's zlib has
// no zstd). The zstd binary rather than libzstd through koffi: its streaming API wants in/out
// buffer structs updated in place across calls, which koffi would copy on each call, and the
// separate process runs the compression on another core, beside the walk, for free. It is named by
// absolute path (no PATH lookup), and plugin/build-rootfs.sh puts it in the managed plugin's rootfs.
// An archive being imported is told apart by its first bytes, so no flag is needed.
import { spawn } from 'node:child_process';
import { Duplex, PassThrough, Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { InvalidOptionError, HostvolError } from '../errors';

export type Compression = 'zstd' | 'gzip' | 'none';
export const COMPRESSIONS: readonly Compression[] = ['zstd', 'gzip', 'none'];
export const ZSTD = '/usr/bin/zstd';

export function parseCompression(v: string): Compression {
  if ((COMPRESSIONS as readonly string[]).includes(v)) return v as Compression;
  throw new InvalidOptionError(`--compress ${v}: use one of ${COMPRESSIONS.join(', ')}`);
}

function zstd(args: string[]): Duplex {
  const child = spawn(ZSTD, ['-q', '-c', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const out = new PassThrough();
  child.stdout.pipe(out, { end: false });
  const fail = (err: Error) => out.destroy(err);
  child.on('error', (err) => fail(new HostvolError(`cannot run ${ZSTD} (${(err as NodeJS.ErrnoException).code ?? err.message}); install zstd or use --compress gzip`)));
  child.on('close', (code, signal) => {
    if (code === 0) out.end();
    else fail(new HostvolError(`${ZSTD} ${args.includes('-d') ? 'could not decompress the archive' : 'failed'}: ${stderr.trim() || `exit ${code ?? signal}`}`));
  });
  const d = Duplex.from({ writable: child.stdin, readable: out });
  d.on('close', () => child.exitCode === null && child.kill());
  // Writes after zstd died would raise EPIPE on stdin; its exit status carries the real reason.
  child.stdin.on('error', () => undefined);
  return d;
}

/** A stream that compresses what is written into it. */
export function compressor(kind: Compression): Duplex {
  if (kind === 'gzip') return zlib.createGzip({ level: 6 });
  if (kind === 'zstd') return zstd(['-3', '-T0']);
  return new PassThrough();
}

const GZIP = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** gzip, zstd or plain, from an archive's first bytes. */
export function detect(head: Buffer): Compression {
  if (head.subarray(0, 2).equals(GZIP)) return 'gzip';
  if (head.subarray(0, 4).equals(ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

/**
 * `input` decompressed, whatever of the three it is: the input itself when plain (its first chunk
 * put back), so its chunks arrive as they were read, never joined into new buffers.
 */
export async function decompressed(input: Readable): Promise<Readable> {
  const head = await new Promise<Buffer | null>((resolve, reject) => {
    const onData = (c: Buffer) => done(c);
    const onEnd = () => done(null);
    const done = (c: Buffer | null) => {
      input.pause();
      // Put back at once, inside the 'data' event: later, the stream may already have ended.
      if (c) input.unshift(c);
      input.off('data', onData).off('end', onEnd).off('error', reject);
      resolve(c);
    };
    input.on('data', onData).once('end', onEnd).once('error', reject);
  });
  if (head === null) return Readable.from([]);
  // Four bytes tell zstd apart; a first chunk shorter than that is plain or broken either way.
  const kind = detect(head);
  if (kind === 'none') return input;
  const d = kind === 'gzip' ? zlib.createGunzip() : zstd(['-d']);
  input.on('error', (err) => d.destroy(err));
  return input.pipe(d);
}
