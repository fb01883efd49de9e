// Labelling and measuring whole trees through no-follow fds: every entry gets the extended
// attribute (a symlink itself, never its target), nothing on another mount is labelled or counted,
// and the numbers agree with du on the same tree.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PathError } from '../../src/errors';
import { stopLibc } from '../../src/host/libc';
import { measureTree, openBeneath, setXattrTree, type Dir } from '../../src/host/tree';
import { CAFE, LONG, NEWLINE, bjoin, makeNastyTree, makeOutside, mount, openFds, removeAll, startHostWorkers, tempDir, umount } from './tree-fixture';

let top: string;
let outside: string;
let fds: number;
// The libc worker thread holds fds of its own for as long as it runs: start it before counting.
beforeAll(() => startHostWorkers());
beforeEach(() => {
  top = tempDir('hv-walk-');
  outside = makeOutside(top);
  fds = openFds();
});
afterEach(() => {
  expect(openFds()).toBe(fds);
  removeAll(top);
});
afterAll(() => stopLibc());

const inside = async <T>(rel: string, fn: (d: Dir) => Promise<T>): Promise<T> => {
  const d = await openBeneath(top, rel);
  try {
    return await fn(d);
  } finally {
    await d.close();
  }
};

/**
 * attribute `attr` of every entry below `dir` (the dir itself as ''), read by an independent walker:
 * Python stepping down with relative chdirs, so depth past PATH_MAX and any bytes in names work.
 */
function xattrs(dir: string, attr: string): Map<string, string | null> {
  const script = `import os, sys
attr = sys.argv[2]
def get(name):
    try: return os.getxattr(name, attr, follow_symlinks=False).decode('latin1')
    except OSError: return None
def walk(rel):
    yield rel, get('.')
    for name in sorted(os.listdir(b'.')):
        st = os.lstat(name)
        if os.path.isdir(name) and not os.path.islink(name) and not os.path.ismount(name):
            os.chdir(name); yield from walk(rel + b'/' + name); os.chdir(b'..')
        else:
            yield rel + b'/' + name, get(name)
os.chdir(sys.argv[1])
for rel, v in walk(b''):
    sys.stdout.buffer.write(rel + b'\\0' + (b'-' if v is None else b'=' + v.encode('latin1')) + b'\\0')`;
  const out = execFileSync('python3', ['-c', script, dir, attr], { maxBuffer: 1 << 26 }).toString('latin1').split('\0');
  const m = new Map<string, string | null>();
  for (let i = 0; i + 1 < out.length; i += 2) m.set(out[i], out[i + 1] === '-' ? null : out[i + 1].slice(1));
  return m;
}

const labelled = (m: Map<string, string | null>, v: string) => [...m].filter(([, x]) => x === v).map(([k]) => k);
const all = (m: Map<string, string | null>) => [...m.keys()];

describe('setXattrTree', () => {
  test('writes a user. attribute on every directory and file, awkward names and hard links included', async () => {
    const vol = path.join(top, 'vol');
    fs.mkdirSync(bjoin(vol, CAFE, NEWLINE), { recursive: true });
    fs.writeFileSync(bjoin(vol, CAFE, NEWLINE, LONG), 'x');
    fs.writeFileSync(bjoin(vol, LONG), 'y');
    fs.linkSync(bjoin(vol, LONG), path.join(vol, 'hard'));
    await inside('vol', (d) => setXattrTree(d, 'user.hostvol', 'vol-label'));
    const got = xattrs(vol, 'user.hostvol');
    expect(got.size).toBe(6);
    expect(labelled(got, 'vol-label')).toEqual(all(got));
  });

  test('labels symlinks and fifos themselves, past PATH_MAX too, and never a target outside', async () => {
    const vol = path.join(top, 'vol');
    makeNastyTree(vol, outside);
    // user. attributes are not allowed on symlinks and fifos; security. ones are (as SELinux labels are).
    await inside('vol', (d) => setXattrTree(d, 'security.hostvol-test', 'lab'));
    const got = xattrs(vol, 'security.hostvol-test');
    expect(labelled(got, 'lab')).toEqual(all(got));
    expect(all(got)).toEqual(expect.arrayContaining(['/to-outside', '/dangling', '/fifo', expect.stringMatching(/(\/n{120}){40}\/up$/)]));
    // hard1 and hard2 share their inode with outside/linked, which is therefore labelled: that is the file itself.
    expect(labelled(xattrs(outside, 'security.hostvol-test'), 'lab')).toEqual(['/linked']);
  });

  test('does not label a mount inside the tree or anything in it', async () => {
    const vol = path.join(top, 'vol');
    fs.mkdirSync(path.join(vol, 'mnt'), { recursive: true });
    fs.writeFileSync(path.join(vol, 'f'), '');
    mount('--bind', outside, path.join(vol, 'mnt'));
    try {
      await inside('vol', (d) => setXattrTree(d, 'user.hostvol', 'v'));
    } finally {
      umount(path.join(vol, 'mnt'));
    }
    expect(labelled(xattrs(vol, 'user.hostvol'), 'v')).toEqual(['', '/f']); // the mount point's own directory neither
    expect(labelled(xattrs(outside, 'user.hostvol'), 'v')).toEqual([]);
  });

  test('on a file system without extended attributes, the error names the attribute, the path and what to do', async () => {
    const vol = path.join(top, 'ramfs');
    fs.mkdirSync(vol);
    mount('-t', 'ramfs', 'none', vol);
    try {
      const err = await inside('ramfs', (d) => setXattrTree(d, 'security.selinux', 'system_u:object_r:container_file_t:s0')).catch((e: Error) => e);
      expect(err).toBeInstanceOf(PathError);
      expect((err as Error).message).toBe(
        `cannot set extended attribute security.selinux on ${vol}: its file system does not support it (EOPNOTSUPP); ` +
          'put the volume on a file system with extended attributes, or do not ask for labels',
      );
    } finally {
      umount(vol);
    }
  });
});

describe('measureTree', () => {
  // One host-worker job a directory: the nasty tree's deep chain of directories is many hand-offs,
  // slow on a loaded machine (seen above 5 s with two cores shared by many test runs).
  const SLOW = 30_000;
  const du = (dir: string, ...args: string[]) => Number(execFileSync('du', ['-s', ...args, dir]).toString().split('\t')[0]);

  test('bytes, apparent bytes and inodes agree with du, hard links counted once', async () => {
    const vol = path.join(top, 'vol');
    makeNastyTree(vol, outside);
    fs.writeFileSync(path.join(vol, 'big'), Buffer.alloc(1 << 20, 1));
    fs.linkSync(path.join(vol, 'big'), path.join(vol, 'big-again'));
    const m = await inside('vol', measureTree);
    expect(m).toEqual({ bytes: du(vol, '-B1'), apparentBytes: du(vol, '-B1', '--apparent-size'), inodes: du(vol, '--inodes') });
    expect(m.apparentBytes).toBeGreaterThan(1 << 20);
    expect(m.apparentBytes).toBeLessThan(2 << 20); // big counted once
  }, SLOW);

  test('a bind mount or another file system inside is not counted, not even its mount point', async () => {
    const vol = path.join(top, 'vol');
    makeNastyTree(vol, outside);
    fs.mkdirSync(path.join(vol, 'bind'));
    fs.mkdirSync(path.join(vol, 'tmp'));
    const withoutMounts = {
      bytes: du(vol, '-B1', `--exclude=${vol}/bind`, `--exclude=${vol}/tmp`),
      apparentBytes: du(vol, '-B1', '--apparent-size', `--exclude=${vol}/bind`, `--exclude=${vol}/tmp`),
      inodes: du(vol, '--inodes', `--exclude=${vol}/bind`, `--exclude=${vol}/tmp`),
    };
    mount('--bind', outside, path.join(vol, 'bind'));
    mount('-t', 'tmpfs', 'none', path.join(vol, 'tmp'));
    try {
      fs.writeFileSync(path.join(vol, 'tmp', 'f'), Buffer.alloc(4096, 1));
      expect(await inside('vol', measureTree)).toEqual(withoutMounts);
    } finally {
      umount(path.join(vol, 'bind'));
      umount(path.join(vol, 'tmp'));
    }
  }, SLOW);
});
