// Where `hostvol import` reads an archive from: a FILE, or stdin. A regular file (given by name or
// redirected to stdin) is read in 1 MiB pieces: each read is a thread-pool round trip, and at Node's
// default 64 KiB those round trips, not the disk, set the pace of a 1 GB import (its extract worker
// sat idle for a second waiting on them). A pipe or socket on stdin stays process.stdin: its reads are
// driven by readiness, not by the thread pool, and Ctrl-C must not wait on a read a half-fed pipe
// would never finish.
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';

export const READ_SIZE = 1 << 20;

/** The archive at `file`, or stdin (descriptor `stdin`, 0 but in tests) for `-`. */
export function archiveInput(file: string, stdin = 0): Readable {
  if (file !== '-') return fs.createReadStream(file, { highWaterMark: READ_SIZE });
  if (fs.fstatSync(stdin).isFile()) return fs.createReadStream('', { fd: stdin, highWaterMark: READ_SIZE, autoClose: false });
  return process.stdin;
}
