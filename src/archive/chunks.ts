// Output in big chunks, into a fixed ring of shared buffers: headers are copied and file data is read
// by pread straight into the current chunk, which is handed on whole when full. The same memory is
// used over and over (a fresh 1 MiB buffer per chunk cost ~3 ms of page faults, ten times the copy
// out of the ring). 1 MiB a chunk: each one costs a message and a write request on the reading side,
// a thread that shares the cores with the walk and with whatever consumes the archive, so fewer and
// bigger chunks leave those more of the CPU.
import * as fs from 'node:fs';

export const CHUNK = 1024 * 1024;

export class ChunkWriter {
  private slot = 0;
  private used = 0;

  /**
   * `slots` are the ring's buffers (CHUNK bytes each); `emit(slot, len)` hands one on and must not
   * return before the slot after it is free to be filled again.
   */
  constructor(
    private readonly slots: Buffer[],
    private readonly emit: (slot: number, len: number) => void,
  ) {}

  private get buf(): Buffer {
    return this.slots[this.slot];
  }

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

  /** Hands on what is buffered; the next slot of the ring becomes current. */
  flush(): void {
    if (this.used === 0) return;
    const [slot, len] = [this.slot, this.used];
    this.slot = (this.slot + 1) % this.slots.length;
    this.used = 0;
    this.emit(slot, len);
  }
}
