// Where `hostvol import` reads its archive from (src/archive/input.ts): a regular file, named or on
// stdin, in 1 MiB reads (at 64 KiB the thread-pool round trips set the pace of a big import); a pipe
// on stdin stays process.stdin, whose reads Ctrl-C never has to wait for.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { READ_SIZE, archiveInput } from '../../src/archive/input';
import { tempDir } from './archive-tree';

let dir: string;
let file: string;
const SIZE = 3 * READ_SIZE + 12_345;

beforeAll(() => {
  dir = tempDir('input');
  file = path.join(dir, 'archive.tar');
  fs.writeFileSync(file, Buffer.alloc(SIZE, 7));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function pieces(r: Readable): Promise<number[]> {
  const sizes: number[] = [];
  for await (const chunk of r) sizes.push((chunk as Buffer).length);
  return sizes;
}

test('a named file is read in 1 MiB pieces', async () => {
  expect(await pieces(archiveInput(file))).toEqual([READ_SIZE, READ_SIZE, READ_SIZE, 12_345]);
});

test('a file redirected to stdin is read in 1 MiB pieces, and the descriptor is left open', async () => {
  const fd = fs.openSync(file, 'r');
  try {
    expect(await pieces(archiveInput('-', fd))).toEqual([READ_SIZE, READ_SIZE, READ_SIZE, 12_345]);
    expect(fs.fstatSync(fd).size).toBe(SIZE);
  } finally {
    fs.closeSync(fd);
  }
});

test('a pipe on stdin is process.stdin', () => {
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const fd = fs.openSync(fifo, fs.constants.O_RDWR); // opens without waiting for a writer
  try {
    expect(archiveInput('-', fd)).toBe(process.stdin);
  } finally {
    fs.closeSync(fd);
  }
});
