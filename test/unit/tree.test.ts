// The no-follow directory tree: opening and making paths beneath a trusted root, removing and
// renaming entries, and emptying whole trees, on real files with every awkward kind of name and entry.
// Whatever a symlink points at outside, and whatever is mounted inside, is never touched.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PathError } from '../../src/errors';
import { stopLibc } from '../../src/host/libc';
import { RetireError, emptyTree, isNotFound, makeBeneath, openBeneath, removeEntry, renameIn, retireBeneath, type Dir } from '../../src/host/tree';
import { CAFE, LONG, NEWLINE, bjoin, fingerprint, makeNastyTree, makeOutside, mount, names, openFds, removeAll, startHostWorkers, tempDir, umount } from './tree-fixture';

let top: string;
let outside: string;
let before: string;
let fds: number;
// The host worker threads (where openBeneath and makeBeneath run) hold fds of their own for as long
// as they run: start them before counting.
beforeAll(() => startHostWorkers());
afterAll(() => stopLibc());
beforeEach(() => {
  top = tempDir('hv-tree-');
  outside = makeOutside(top);
  before = fingerprint(outside);
  fds = openFds();
});
afterEach(() => {
  // Every fd a test's Dirs or walks opened is closed again, errors included.
  expect(openFds()).toBe(fds);
  removeAll(top);
});

const withDir = async <T>(d: Promise<Dir>, fn: (d: Dir) => Promise<T>): Promise<T> => {
  const dir = await d;
  try {
    return await fn(dir);
  } finally {
    await dir.close();
  }
};

const failure = async (p: Promise<unknown>): Promise<PathError & { code?: string }> => {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(PathError);
  return err as PathError & { code?: string };
};

describe('openBeneath', () => {
  test('opens the root itself and plain directories below it; path is for messages', async () => {
    fs.mkdirSync(path.join(top, 'a'));
    await withDir(openBeneath(top, ''), async (d) => expect(fs.fstatSync(d.fd).ino).toBe(fs.statSync(top).ino));
    const inner = await withDir(openBeneath(top, 'a'), async (d) => {
      expect(d.path).toBe(path.join(top, 'a'));
      return fs.fstatSync(d.fd).ino;
    });
    expect(inner).toBe(fs.statSync(path.join(top, 'a')).ino);
  });

  test('a component that is a symlink is refused, even when it points inside', async () => {
    fs.mkdirSync(path.join(top, 'real', 'b'), { recursive: true });
    fs.symlinkSync(outside, path.join(top, 'link'));
    fs.symlinkSync('real', path.join(top, 'inner'));
    for (const rel of ['link', 'link/sub', 'inner/b']) {
      const err = await failure(openBeneath(top, rel));
      expect(err.code).toBe('ENOTDIR');
      expect(err.message).toContain(`${top}/${rel.split('/')[0]} is not a plain directory: it is a symbolic link (swapped for a symlink?)`);
    }
  });

  test('a file on the way is refused, a missing component says ENOENT', async () => {
    fs.writeFileSync(path.join(top, 'file'), '');
    expect((await failure(openBeneath(top, 'file/x'))).message).toContain('it is not a directory');
    const missing = await failure(openBeneath(top, 'nope/deeper'));
    expect(isNotFound(missing)).toBe(true);
    expect(missing.message).toBe(`${top}/nope does not exist`);
  });

  test("'.', '..' and absolute relative paths are refused before anything is opened", async () => {
    for (const rel of ['..', 'a/../..', './a', '/etc']) expect((await failure(openBeneath(top, rel))).code).toBe('EINVAL');
  });

  test('an open Dir keeps meaning the directory it opened after its name is swapped for a symlink', async () => {
    fs.mkdirSync(path.join(top, 'vol'));
    await withDir(openBeneath(top, 'vol'), async (d) => {
      fs.renameSync(path.join(top, 'vol'), path.join(top, 'moved'));
      fs.symlinkSync(outside, path.join(top, 'vol'));
      fs.writeFileSync(d.at('written'), 'through the fd');
    });
    expect(fs.readFileSync(path.join(top, 'moved', 'written'), 'utf8')).toBe('through the fd');
    expect(fingerprint(outside)).toBe(before);
  });
});

describe('makeBeneath', () => {
  test('under umask 027 every made directory has exactly the mode asked for, and made is the first one', async () => {
    const old = process.umask(0o027);
    try {
      const r1 = await makeBeneath(top, 'a/b/c', 0o755);
      await r1.dir.close();
      expect(r1.made).toBe(path.join(top, 'a'));
      for (const p of ['a', 'a/b', 'a/b/c']) expect(fs.statSync(path.join(top, p)).mode & 0o7777).toBe(0o755);
      const r2 = await makeBeneath(top, 'a/b/d/e', 0o2770);
      await r2.dir.close();
      expect(r2.made).toBe(path.join(top, 'a/b/d'));
      expect(fs.statSync(path.join(top, 'a/b/d/e')).mode & 0o7777).toBe(0o2770);
      expect(fs.statSync(path.join(top, 'a/b')).mode & 0o7777).toBe(0o755); // existing ones are left alone
      const r3 = await makeBeneath(top, 'a/b', 0o700);
      expect(fs.fstatSync(r3.dir.fd).ino).toBe(fs.statSync(path.join(top, 'a/b')).ino);
      await r3.dir.close();
      expect(r3.made).toBeNull();
    } finally {
      process.umask(old);
    }
  });

  test('a symlink on the way is refused and nothing is made where it points', async () => {
    fs.mkdirSync(path.join(top, 'a'));
    fs.symlinkSync(outside, path.join(top, 'a', 'b'));
    const err = await failure(makeBeneath(top, 'a/b/c/d', 0o777));
    expect(err.message).toContain(`${top}/a/b is not a plain directory`);
    expect(fingerprint(outside)).toBe(before);
  });
});

describe('removeEntry and renameIn', () => {
  test('removeEntry removes a whole awkward tree and fsyncs; links to the outside are unlinked, not followed', async () => {
    makeNastyTree(path.join(top, 'vol'), outside);
    await withDir(openBeneath(top, ''), async (d) => {
      await removeEntry(d, 'vol');
      await removeEntry(d, 'vol'); // already gone: nothing to do
    });
    expect(fs.existsSync(path.join(top, 'vol'))).toBe(false);
    expect(fingerprint(outside)).toBe(before);
    expect(fs.statSync(path.join(outside, 'linked')).nlink).toBe(1);
  });

  test('removeEntry of a symlink or file removes only that entry; of a non-UTF-8 directory, the directory', async () => {
    fs.symlinkSync(outside, path.join(top, 'ln'));
    fs.mkdirSync(bjoin(top, CAFE));
    fs.writeFileSync(bjoin(top, CAFE, NEWLINE), 'x');
    await withDir(openBeneath(top, ''), async (d) => {
      await removeEntry(d, 'ln');
      await removeEntry(d, CAFE);
    });
    expect(names(top).map(String)).toEqual(['outside']);
    expect(fingerprint(outside)).toBe(before);
  });

  test('renameIn renames raw names and moves a symlink itself', async () => {
    fs.mkdirSync(bjoin(top, CAFE));
    fs.symlinkSync(outside, path.join(top, 'ln'));
    await withDir(openBeneath(top, ''), async (d) => {
      await renameIn(d, CAFE, LONG);
      await renameIn(d, 'ln', NEWLINE);
      expect((await failure(renameIn(d, 'outside', 'a/b'))).code).toBe('EINVAL');
      expect((await failure(renameIn(d, 'missing', 'x'))).code).toBe('ENOENT');
    });
    expect(fs.statSync(bjoin(top, LONG)).isDirectory()).toBe(true);
    expect(fs.readlinkSync(bjoin(top, NEWLINE), 'utf8')).toBe(outside);
    expect(fingerprint(outside)).toBe(before);
  });
});

describe('emptyTree', () => {
  test('empties every kind of entry, names past PATH_MAX included, keeping the directory itself', async () => {
    const vol = path.join(top, 'vol');
    makeNastyTree(vol, outside);
    await withDir(openBeneath(top, 'vol'), emptyTree);
    expect(names(vol)).toEqual([]);
    expect(fingerprint(outside)).toBe(before);
    expect(fs.statSync(path.join(outside, 'linked')).nlink).toBe(1); // only the tree's hard links went
  });

  test('a bind mount inside (same file system, so same st_dev) is refused and nothing in it is touched', async () => {
    const vol = path.join(top, 'vol');
    fs.mkdirSync(path.join(vol, 'a', 'mnt'), { recursive: true });
    mount('--bind', outside, path.join(vol, 'a', 'mnt'));
    try {
      expect(fs.statSync(path.join(vol, 'a', 'mnt')).dev).toBe(fs.statSync(vol).dev);
      const err = await failure(withDir(openBeneath(top, 'vol'), emptyTree));
      expect(err.message).toBe(`${vol}/a/mnt is mounted inside ${vol}; unmount it first`);
      await withDir(openBeneath(top, ''), async (d) => {
        expect((await failure(removeEntry(d, 'vol'))).code).toBe('EXDEV');
      });
    } finally {
      umount(path.join(vol, 'a', 'mnt'));
    }
    expect(fingerprint(outside)).toBe(before);
  });

  test('a different file system mounted inside is refused too', async () => {
    const vol = path.join(top, 'vol');
    fs.mkdirSync(path.join(vol, 'tmp'), { recursive: true });
    mount('-t', 'tmpfs', 'none', path.join(vol, 'tmp'));
    try {
      fs.writeFileSync(path.join(vol, 'tmp', 'f'), 'on tmpfs');
      expect((await failure(withDir(openBeneath(top, 'vol'), emptyTree))).code).toBe('EXDEV');
      expect(fs.readFileSync(path.join(vol, 'tmp', 'f'), 'utf8')).toBe('on tmpfs');
    } finally {
      umount(path.join(vol, 'tmp'));
    }
  });
});

describe('retireBeneath', () => {
  const TRASH = '.trash-x';
  /** The outcome, with the handed-back parent (when there is one) checked and closed. */
  const retire = async (rel: string, name: string) => {
    const r = await retireBeneath(top, rel, name, TRASH);
    if (r.outcome !== 'removed') {
      expect(fs.fstatSync(r.parent.fd).ino).toBe(fs.statSync(path.join(top, rel)).ino);
      await r.parent.close();
    }
    return r.outcome;
  };

  test('an empty directory is renamed away and removed, leaving neither name', async () => {
    fs.mkdirSync(path.join(top, 'p', 'vol'), { recursive: true });
    expect(await retire('p', 'vol')).toBe('removed');
    expect(names(path.join(top, 'p'))).toEqual([]);
  });

  test('a directory with anything in it, a symlink or a missing name is left exactly as it is', async () => {
    fs.mkdirSync(path.join(top, 'full', 'sub'), { recursive: true });
    fs.symlinkSync(outside, path.join(top, 'ln'));
    expect(await retire('', 'full')).toBe('busy');
    expect(await retire('', 'ln')).toBe('busy');
    expect(await retire('', 'missing')).toBe('absent');
    expect(fs.existsSync(path.join(top, 'full', 'sub'))).toBe(true);
    expect(fs.readlinkSync(path.join(top, 'ln'))).toBe(outside);
    expect(fingerprint(outside)).toBe(before);
  });

  test('an empty directory with something mounted on it is busy, not renamed', async () => {
    fs.mkdirSync(path.join(top, 'mnt'));
    mount('-t', 'tmpfs', 'none', path.join(top, 'mnt'));
    try {
      expect(await retire('', 'mnt')).toBe('busy');
      expect(fs.existsSync(path.join(top, 'mnt'))).toBe(true);
    } finally {
      umount(path.join(top, 'mnt'));
    }
  });

  test('a parent that is a symlink is refused like openBeneath refuses it; a rename that fails says so', async () => {
    fs.symlinkSync(outside, path.join(top, 'link'));
    const err = await failure(retireBeneath(top, 'link', 'sub', TRASH));
    expect(err.code).toBe('ENOTDIR');
    expect(err.message).toContain(`${top}/link is not a plain directory: it is a symbolic link`);
    fs.mkdirSync(path.join(top, 'vol'));
    fs.mkdirSync(path.join(top, TRASH, 'full'), { recursive: true }); // rename onto a non-empty directory: ENOTEMPTY
    const renameErr = await failure(retireBeneath(top, '', 'vol', TRASH));
    expect(renameErr).toBeInstanceOf(RetireError);
    expect(renameErr.message).toBe(`cannot rename ${top}/vol to ${TRASH} (ENOTEMPTY)`);
    expect((renameErr as RetireError).renamed).toBe(false);
    expect(fingerprint(outside)).toBe(before);
  });
});
