// An adversary swapping directories for symlinks to the outside while hostvol works on the tree:
// a separate process exchanges each pair of names atomically (renameat2 RENAME_EXCHANGE) in a
// tight loop. Whatever the interleaving, nothing outside may be deleted, made or changed. The
// operation itself may fail (the tree keeps changing under it); it may not leave the tree.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stopLibc } from '../../src/host/libc';
import { emptyTree, makeBeneath, openBeneath, removeEntry } from '../../src/host/tree';
import { fingerprint, makeOutside, openFds, removeAll, startHostWorkers, tempDir } from './tree-fixture';

// Each round builds, races and checks real trees: far slower than the default 5 s on a shared machine.
jest.setTimeout(180_000);

const SWAPPER = `
const koffi = require(process.argv[1]);
const renameat2 = koffi.load('libc.so.6').func('int renameat2(int, const char*, int, const char*, unsigned int)');
const pairs = JSON.parse(process.argv[2]);
process.stdout.write('ready\\n');
for (;;) for (const [a, b] of pairs) renameat2(-100, a, -100, b, 2 /* RENAME_EXCHANGE */);
`;

/** Starts the swapper on `pairs` and resolves once it is looping. */
async function swapper(pairs: [string, string][]): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', SWAPPER, require.resolve('koffi'), JSON.stringify(pairs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`swapper exited early (${code})`)));
  });
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

let top: string;
let outside: string;
let before: string;
let fds: number;
// The host worker threads (where openBeneath and makeBeneath run) hold fds of their own for as long
// as they run: start them before counting.
beforeAll(() => startHostWorkers());
afterAll(() => stopLibc());
beforeEach(() => {
  top = tempDir('hv-race-');
  outside = makeOutside(top);
  fs.mkdirSync(path.join(outside, 'sub', 'more'));
  before = fingerprint(outside);
  fds = openFds();
});
afterEach(() => {
  expect(openFds()).toBe(fds);
  removeAll(top);
});

const DIRS = 6;

/** Directories d<i> full of files and subdirectories, each with a symlink l<i> to the outside to swap with. */
function makeVolume(vol: string): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i < DIRS; i++) {
    const d = path.join(vol, `d${i}`);
    fs.mkdirSync(path.join(d, 'sub', 'more'), { recursive: true });
    for (let f = 0; f < 20; f++) fs.writeFileSync(path.join(d, f % 2 ? 'sub' : 'sub/more', `f${f}`), 'data');
    fs.symlinkSync(outside, path.join(vol, `l${i}`));
    pairs.push([d, path.join(vol, `l${i}`)]);
  }
  return pairs;
}

const ROUNDS = 5;

test('emptyTree and removeEntry under a swapping adversary never touch the outside, and finish once it stops', async () => {
  const vol = path.join(top, 'vol');
  for (let round = 0; round < ROUNDS; round++) {
    const pairs = makeVolume(vol);
    const adversary = await swapper(pairs);
    try {
      const d = await openBeneath(top, 'vol');
      // May fail (e.g. the tree kept changing); what matters is where it acted.
      await emptyTree(d).catch(() => undefined).finally(() => d.close());
    } finally {
      await stop(adversary);
    }
    expect(fingerprint(outside)).toBe(before);
    makeVolume(path.join(vol, 'again'));
    const adversary2 = await swapper(pairs.map(([a, b]) => [a.replace('/vol/', '/vol/again/'), b.replace('/vol/', '/vol/again/')]));
    try {
      const d = await openBeneath(top, 'vol');
      await removeEntry(d, 'again').catch(() => undefined).finally(() => d.close());
    } finally {
      await stop(adversary2);
    }
    expect(fingerprint(outside)).toBe(before);
    const d = await openBeneath(top, 'vol');
    await emptyTree(d).finally(() => d.close());
    expect(fs.readdirSync(vol)).toEqual([]);
  }
});

test('openBeneath under a swapping adversary opens the real directory or refuses, never the outside one', async () => {
  fs.mkdirSync(path.join(top, 'vol', 'a', 'sub'), { recursive: true });
  fs.symlinkSync(outside, path.join(top, 'vol', 'link'));
  const real = fs.statSync(path.join(top, 'vol', 'a', 'sub')).ino;
  const adversary = await swapper([[path.join(top, 'vol', 'a'), path.join(top, 'vol', 'link')]]);
  const seen = { opened: 0, refused: 0 };
  try {
    for (let i = 0; i < 300; i++) {
      const d = await openBeneath(top, 'vol/a/sub').catch(() => null);
      if (!d) {
        seen.refused++;
        continue;
      }
      const ino = fs.fstatSync(d.fd).ino;
      await d.close();
      expect(ino).toBe(real);
      seen.opened++;
    }
  } finally {
    await stop(adversary);
  }
  // Both outcomes happened, so the swap really raced the walk.
  expect(seen.opened).toBeGreaterThan(0);
  expect(seen.refused).toBeGreaterThan(0);
});

test('makeBeneath under a swapping adversary never makes or chmods anything outside', async () => {
  fs.mkdirSync(path.join(top, 'vol', 'a'), { recursive: true });
  fs.symlinkSync(outside, path.join(top, 'vol', 'link'));
  const adversary = await swapper([[path.join(top, 'vol', 'a'), path.join(top, 'vol', 'link')]]);
  try {
    for (let i = 0; i < 100; i++) {
      const r = await makeBeneath(top, `vol/a/new${i}/sub`, 0o777).catch(() => null);
      await r?.dir.close();
    }
  } finally {
    await stop(adversary);
  }
  expect(fingerprint(outside)).toBe(before);
});
