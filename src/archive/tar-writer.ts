// Entries from the walk written out as a pax archive: each header, then the file's bytes read from
// its fd (only the data segments of a sparse file), padded to the block. A file that shrinks while
// it is read is padded with zeros to the size its header promised (as GNU tar does), with a warning.
import type { ChunkWriter } from './chunks';
import type { Entry } from './entry';
import { shown } from './names';
import { TRAILER, dataSize, entryHeader } from './tar-encode';
import { padding } from './tar-header';

export class TarWriter {
  readonly warnings: string[] = [];

  constructor(private readonly out: ChunkWriter) {}

  add(e: Entry, fd: number): void {
    this.out.put(entryHeader(e)); // copied into the chunk before the next entry's header is made
    if (e.kind !== 'file') return;
    const segments = e.sparse ? e.sparse.segments : [[0, e.size] as [number, number]];
    for (const [offset, len] of segments) {
      const got = this.out.readFrom(fd, offset, len);
      if (got < len) {
        this.warnings.push(`${shown(e.path)} shrank while it was read; padded with zeros`);
        this.out.zeros(len - got);
      }
    }
    this.out.zeros(padding(dataSize(e)));
  }

  end(): void {
    this.out.put(TRAILER);
    this.out.flush();
  }
}
