// Fixtures for the tree tests: a real directory tree with every awkward kind of entry, a precious
// directory outside it that symlinks and hard links point at, and a fingerprint of that outside
// directory to prove nothing there was touched.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MAX_WORKERS } from '../../src/host/host-worker';
import { libc } from '../../src/host/libc';

export const b = (s: string): Buffer => Buffer.from(s, 'latin1');
/** Joins a directory and raw-byte names into a Buffer path (names need not be UTF-8). */
export const bjoin = (dir: string | Buffer, ...names: (string | Buffer)[]): Buffer =>
  Buffer.concat([Buffer.from(dir), ...names.flatMap((n) => [Buffer.from('/'), Buffer.isBuffer(n) ? n : Buffer.from(n)])]);

export const CAFE = b('caf\xe9'); // Latin-1 é: not UTF-8
export const NEWLINE = Buffer.from('new\nline');
export const LONG = Buffer.from('x'.repeat(255));

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** The precious directory outside the tree: files, a subdirectory, and a file the tree hard-links. */
export function makeOutside(dir: string): string {
  const out = path.join(dir, 'outside');
  fs.mkdirSync(path.join(out, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(out, 'precious'), 'keep me');
  fs.writeFileSync(path.join(out, 'sub', 'deep'), 'keep me too');
  fs.writeFileSync(path.join(out, 'linked'), 'hard-linked from the tree');
  fs.chmodSync(out, 0o750);
  return out;
}

/** Every entry below `dir` with its type, mode, size and content hash (link counts are checked where they matter). */
export function fingerprint(dir: string): string {
  const out = execFileSync('find', [dir, '-printf', '%P %y %m %s\\0'], { maxBuffer: 1 << 26 }).toString('latin1');
  const sums = execFileSync('find', [dir, '-type', 'f', '-exec', 'sha1sum', '{}', '+']).toString('latin1');
  return `${out.split('\0').sort().join('\n')}\n${sums.split('\n').sort().join('\n')}`;
}

/** How deep the nested chain goes: 40 levels of 120-byte names, past PATH_MAX (4096), which path-based code cannot reach. */
export const DEPTH = 40;
const LEVEL = 'n'.repeat(120);

/**
 * A tree with non-UTF-8, newline and 255-byte names, a chain nested past PATH_MAX, symlinks to the
 * outside (a directory, a file, a dangling one), a hard link to an outside file, and a fifo.
 */
export function makeNastyTree(tree: string, outside: string): void {
  fs.mkdirSync(tree, { recursive: true });
  fs.mkdirSync(bjoin(tree, CAFE));
  fs.writeFileSync(bjoin(tree, CAFE, CAFE), 'latin-1 name');
  fs.mkdirSync(bjoin(tree, NEWLINE));
  fs.writeFileSync(bjoin(tree, NEWLINE, 'f'), 'x'.repeat(10000));
  fs.writeFileSync(bjoin(tree, LONG), '255 bytes');
  fs.mkdirSync(bjoin(tree, CAFE, LONG));
  fs.symlinkSync(outside, path.join(tree, 'to-outside'));
  fs.symlinkSync(path.join(outside, 'precious'), bjoin(tree, CAFE, 'to-precious'));
  fs.symlinkSync('/nonexistent/target', path.join(tree, 'dangling'));
  fs.linkSync(path.join(outside, 'linked'), path.join(tree, 'hard1'));
  fs.linkSync(path.join(outside, 'linked'), bjoin(tree, CAFE, 'hard2'));
  fs.writeFileSync(path.join(tree, 'own'), 'own file');
  fs.linkSync(path.join(tree, 'own'), path.join(tree, 'own-again'));
  execFileSync('mkfifo', [path.join(tree, 'fifo')]);
  makeDeepChain(tree);
}

/** DEPTH nested directories, made by a child that steps down with relative chdirs (paths this long cannot be named). */
function makeDeepChain(tree: string): void {
  const script = `import os, sys
os.chdir(sys.argv[1])
for _ in range(${DEPTH}):
    os.mkdir('${LEVEL}')
    os.chdir('${LEVEL}')
open('file', 'w').write('bottom')
os.symlink(sys.argv[2], 'up')`;
  execFileSync('python3', ['-c', script, tree, path.dirname(tree)]);
}

/** Removes a test's temp dir; rm copes with paths past PATH_MAX, which fs.rmSync does not. */
export function removeAll(dir: string): void {
  execFileSync('rm', ['-rf', '--one-file-system', dir]);
}

/** Names in a directory as raw bytes. */
export function names(dir: string | Buffer): Buffer[] {
  return fs.readdirSync(dir, { encoding: 'buffer' });
}

/**
 * Starts every host worker (each holds descriptors of its own for as long as it runs, and the pool
 * grows only when jobs overlap): MAX_WORKERS jobs at once each find the others busy.
 */
export async function startHostWorkers(): Promise<void> {
  await Promise.all(Array.from({ length: MAX_WORKERS }, () => libc('llistxattr', 'start', '/')));
}

/** Open file descriptors of this process, to prove every walk closes what it opens (start the workers first). */
export function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

export function mount(...args: string[]): void {
  execFileSync('mount', args);
}

export function umount(target: string): void {
  execFileSync('umount', ['-l', target]);
}
