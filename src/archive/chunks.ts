// Output in big chunks: headers are copied and file data is read by pread straight into a chunk,
// which is handed on whole (an ArrayBuffer of its own, so it can be transferred between threads
// without a copy). One chunk per megabyte, not one per header or read, keeps the per-message cost
// of moving data off the worker small against the bytes moved.
import * as fs from 'node:fs';

export const CHUNK = 1 << 20;

export class ChunkWriter {
  private buf = Buffer.allocUnsafeSlow(CHUNK);
  private used = 0;

  constructor(private readonly emit: (chunk: Buffer) => void) {}

  put(b: Buffer): void {
    for (let at = 0; at < b.length; ) {
      const n = Math.min(b.length - at, CHUNK - this.used);
      b.copy(this.buf, this.used, at, at + n);
      this.used += n;
      at += n;
      if (this.used === CHUNK) this.flush();
    }
  }

  zeros(count: number): void {
    for (let left = count; left > 0; ) {
      const n = Math.min(left, CHUNK - this.used);
      this.buf.fill(0, this.used, this.used + n);
      this.used += n;
      left -= n;
      if (this.used === CHUNK) this.flush();
    }
  }

  /** Copies `len` bytes of `fd` from `position`; returns how many it read before the file ended. */
  readFrom(fd: number, position: number, len: number): number {
    let done = 0;
    while (done < len) {
      const n = fs.readSync(fd, this.buf, this.used, Math.min(len - done, CHUNK - this.used), position + done);
      if (n === 0) break;
      this.used += n;
      done += n;
      if (this.used === CHUNK) this.flush();
    }
    return done;
  }

  /** Hands on what is buffered (a fresh chunk takes its place). */
  flush(): void {
    if (this.used === 0) return;
    const out = this.used === CHUNK ? this.buf : Buffer.from(this.buf.subarray(0, this.used));
    if (out === this.buf) this.buf = Buffer.allocUnsafeSlow(CHUNK);
    this.used = 0;
    this.emit(out);
  }
}
