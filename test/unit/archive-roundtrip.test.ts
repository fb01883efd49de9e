// Export → import keeps a tree exactly, entry by entry, plain and compressed; GNU tar reads what
// export writes and import reads what GNU tar writes; clone makes the same tree.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { cloneTree } from '../../src/archive/clone';
import { exportTree } from '../../src/archive/export';
import { importArchive } from '../../src/archive/import';
import { stopLibc } from '../../src/host/libc';
import { expectSameTree, listing, makeEveryKind, snapshot, tempDir } from './archive-tree';

jest.setTimeout(60_000);

let work: string;
let src: string;
beforeAll(async () => {
  work = tempDir('roundtrip');
  src = path.join(work, 'src');
  fs.mkdirSync(src);
  await makeEveryKind(src);
});
afterAll(async () => {
  fs.rmSync(work, { recursive: true, force: true });
  await stopLibc();
});

function volume(name: string): string {
  const d = path.join(work, name);
  fs.mkdirSync(d);
  return d;
}

async function exportToFile(compress: 'none' | 'gzip' | 'zstd'): Promise<string> {
  const file = path.join(work, `out-${compress}.tar`);
  const ex = exportTree(src, { compress });
  await pipeline(ex.stream, fs.createWriteStream(file));
  const r = await ex.done;
  expect(r.warnings).toEqual([]);
  return file;
}

describe('export then import', () => {
  for (const compress of ['none', 'gzip', 'zstd'] as const) {
    test(`gives back the same tree, every kind of entry (compress ${compress})`, async () => {
      const file = await exportToFile(compress);
      const head = fs.readFileSync(file).subarray(0, 4);
      if (compress === 'gzip') expect(head.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
      if (compress === 'zstd') expect(head).toEqual(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
      const dst = volume(`dst-${compress}`);
      const r = await importArchive(dst, fs.createReadStream(file));
      expect(r.entries).toBeGreaterThan(20);
      expectSameTree(await snapshot(dst), await snapshot(src));
      expect(listing(work).filter((n) => n.includes('.hostvol-'))).toEqual([]); // no staging left
    });
  }

  test('keeps holes: the sparse file takes a fraction of its size on disk', async () => {
    const file = await exportToFile('none');
    expect(fs.statSync(file).size).toBeLessThan(1 << 20); // 16 MiB + 1 MiB of holes are not in the archive
    const dst = volume('dst-sparse');
    await importArchive(dst, fs.createReadStream(file));
    const st = fs.statSync(path.join(dst, 'sparse'));
    expect(st.size).toBe(16 << 20);
    expect(st.blocks * 512).toBeLessThan(1 << 20);
  });
});

describe('GNU tar', () => {
  test('lists and extracts what export writes, with xattrs and owners', async () => {
    const file = await exportToFile('none');
    const listed = execFileSync('/usr/bin/tar', ['-tvf', file], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    expect(listed).toContain('./regular link to ./dir/sub/hardlink2'); // the first of the group in walk order
    const dst = volume('by-gnu-tar');
    execFileSync('/usr/bin/tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', file, '-C', dst], { stdio: 'pipe' });
    expectSameTree(await snapshot(dst), await snapshot(src));
  });

  test('writes pax archives import reads (tar --format=posix --xattrs --sparse from a pipe)', async () => {
    const tar = spawn('/usr/bin/tar', ['--format=posix', '--xattrs', '--xattrs-include=*', '--sparse', '-C', src, '-cf', '-', '.']);
    const dst = volume('from-gnu-posix');
    await importArchive(dst, tar.stdout);
    expectSameTree(await snapshot(dst), await snapshot(src));
  });

  test('writes gnu-format archives (long names as L/K records) import reads', async () => {
    const tar = spawn('/usr/bin/tar', ['--format=gnu', '-C', src, '-cf', '-', '.']);
    const dst = volume('from-gnu-gnu');
    await importArchive(dst, tar.stdout);
    // The gnu format keeps neither xattrs nor sub-second times: compare the rest.
    const opts = { times: false, xattrs: false };
    const want = await snapshot(src, opts);
    const got = await snapshot(dst, opts);
    for (const s of [...want.values(), ...got.values()]) delete s.sparse; // no --sparse: holes written out
    expectSameTree(got, want);
  });
});

describe('clone', () => {
  test('makes the same tree, sparse files still sparse', async () => {
    const dst = volume('clone');
    const r = await cloneTree(src, dst);
    expect(r.warnings).toEqual([]);
    expectSameTree(await snapshot(dst), await snapshot(src));
  });
});

test('an export stream destroyed early stops the walk and rejects `done`', async () => {
  const ex = exportTree(src);
  const first = await new Promise<Buffer>((resolve) => ex.stream.once('data', resolve));
  expect(first.length).toBeGreaterThan(0);
  ex.stream.destroy();
  await expect(ex.done).rejects.toThrow();
  void Readable;
});
