// The export walk (src/archive/walk.ts) when the tree changes under it: readdir has said what each
// name is, and by the time the walk opens it, it is gone or something else. Each swap is made from
// the visit of the entry sorted just before it, so it lands exactly between readdir and open. The
// walk must export what is there now, never follow a symlink swapped in, and never fail for it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Entry } from '../../src/archive/entry';
import { walkTree } from '../../src/archive/walk';
import { tempDir } from './archive-tree';

let root: string;
let outside: string;

beforeEach(() => {
  root = tempDir('walk');
  outside = tempDir('walk-outside');
  fs.writeFileSync(path.join(outside, 'secret'), 'outside the volume\n');
  fs.writeFileSync(path.join(root, 'a'), 'first\n');
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(outside, { recursive: true, force: true });
});

interface Seen {
  kind: Entry['kind'];
  link?: string;
  content?: string;
}

/** Walks `root`, running `swap` when entry `a` is visited; what was exported, by path. */
function walkSwapping(swap: () => void): Map<string, Seen> {
  const seen = new Map<string, Seen>();
  walkTree(
    root,
    (e, fd) => {
      const content = fd >= 0 ? fs.readFileSync(fd, 'utf8') : undefined;
      seen.set(e.path.toString(), { kind: e.kind, link: e.kind === 'symlink' ? e.link.toString() : undefined, content });
      if (e.path.toString() === 'a') swap();
    },
    { sparse: true },
  );
  return seen;
}

test('a file swapped for a symlink to a file outside is exported as that symlink, not as what it points at', () => {
  const b = path.join(root, 'b');
  fs.writeFileSync(b, 'inside\n');
  const seen = walkSwapping(() => {
    fs.rmSync(b);
    fs.symlinkSync(path.join(outside, 'secret'), b);
  });
  expect(seen.get('b')).toEqual({ kind: 'symlink', link: path.join(outside, 'secret'), content: undefined });
  expect([...seen.values()].some((s) => s.content?.includes('outside'))).toBe(false);
});

test('a directory swapped for a symlink to a directory outside is exported as the symlink, and not entered', () => {
  const b = path.join(root, 'b');
  fs.mkdirSync(b);
  fs.writeFileSync(path.join(b, 'inner'), 'inside\n');
  const seen = walkSwapping(() => {
    fs.rmSync(b, { recursive: true });
    fs.symlinkSync(outside, b);
  });
  expect(seen.get('b')).toEqual({ kind: 'symlink', link: outside, content: undefined });
  expect([...seen.keys()].filter((p) => p.startsWith('b/'))).toEqual([]);
});

test('a file swapped for a directory is exported as the directory, with what it holds', () => {
  const b = path.join(root, 'b');
  fs.writeFileSync(b, 'was a file\n');
  const seen = walkSwapping(() => {
    fs.rmSync(b);
    fs.mkdirSync(b);
    fs.writeFileSync(path.join(b, 'inner'), 'now inside a directory\n');
  });
  expect(seen.get('b')?.kind).toBe('dir');
  expect(seen.get('b/inner')).toEqual({ kind: 'file', link: undefined, content: 'now inside a directory\n' });
});

test('a file deleted between readdir and open is left out, and the walk goes on', () => {
  fs.writeFileSync(path.join(root, 'b'), 'deleted\n');
  fs.writeFileSync(path.join(root, 'c'), 'after\n');
  const seen = walkSwapping(() => fs.rmSync(path.join(root, 'b')));
  expect(seen.has('b')).toBe(false);
  expect(seen.get('c')?.content).toBe('after\n');
});
