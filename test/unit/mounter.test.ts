// The mounter makes bind mounts with system calls only: read-only ones are read-only for us and for
// every peer they propagate to, leftovers are replaced rather than stacked, busy ones are detached.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stopLibc } from '../../src/host/libc';
import { legacyBind, MountError, systemMounter as mounter } from '../../src/host/mounter';
import { readMounts } from '../../src/host/mountinfo';
import { unmountAndRemove } from './support';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-mounter-'));
const mounts = path.join(dir, 'mounts');
const at = (name: string) => path.join(mounts, name);
/** A volume directory of the test's own (unique `name`), holding a file `seed`. */
const source = (name: string) => {
  const src = path.join(dir, 'src', name);
  fs.mkdirSync(src, { recursive: true });
  fs.writeFileSync(path.join(src, 'seed'), 'seed');
  return src;
};

/** Everything mounted exactly at `p`, bottom first. */
const mountsAt = async (p: string) => (await readMounts()).filter((m) => m.mountPoint === p);
/** The volume directory opened the way the driver opens it: without following a symlink. */
const openDir = (p: string) => fs.promises.open(p, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);

async function bindDir(p: string, target: string, readOnly: boolean): Promise<void> {
  const h = await openDir(p);
  try {
    await mounter.bind(h.fd, target, readOnly);
  } finally {
    await h.close();
  }
}
const writeFails = (p: string) => fs.promises.writeFile(path.join(p, 'probe'), 'x').then(() => 'written', (e) => e.code);

afterAll(async () => {
  await unmountAndRemove(dir);
  await stopLibc();
});

const rootOnly = process.getuid?.() === 0 ? describe : describe.skip;

rootOnly('bind', () => {
  test('a read-only bind refuses writes with EROFS while the source stays writable', async () => {
    const src = source('ro');
    await bindDir(src, at('ro'), true);
    expect(fs.readFileSync(path.join(at('ro'), 'seed'), 'utf8')).toBe('seed');
    expect(await writeFails(at('ro'))).toBe('EROFS');
    expect(await writeFails(src)).toBe('written');
    expect((await mountsAt(at('ro')))[0].options).toContain('ro');
    await mounter.release(at('ro'));
  });

  test('a read-write bind is writable and shows the source', async () => {
    const src = source('rw');
    await bindDir(src, at('rw'), false);
    fs.writeFileSync(path.join(at('rw'), 'through'), 'x');
    expect(fs.readFileSync(path.join(src, 'through'), 'utf8')).toBe('x');
    await mounter.release(at('rw'));
  });

  test('the target and its parents are created with mode 0755', async () => {
    const src = source('fresh');
    const deep = path.join(dir, 'fresh', 'a', 'b');
    await bindDir(src, deep, false);
    await mounter.release(deep);
    expect(fs.statSync(path.dirname(deep)).mode & 0o7777).toBe(0o755);
  });

  test('a leftover mount at the target is replaced, never stacked', async () => {
    const src = source('left');
    const other = path.join(dir, 'other');
    fs.mkdirSync(other, { recursive: true });
    fs.writeFileSync(path.join(other, 'old'), '');
    await bindDir(other, at('left'), false);
    await bindDir(other, at('left'), false); // a crash left it: the same bind again
    await bindDir(src, at('left'), true);
    expect(await mountsAt(at('left'))).toHaveLength(1);
    expect(fs.existsSync(path.join(at('left'), 'seed'))).toBe(true);
    expect(fs.existsSync(path.join(at('left'), 'old'))).toBe(false);
    await mounter.release(at('left'));
    expect(await mountsAt(at('left'))).toHaveLength(0);
  });

  test('a symlink in place of the target is refused, and nothing is mounted where it points', async () => {
    const src = source('link');
    const elsewhere = path.join(dir, 'elsewhere');
    fs.mkdirSync(elsewhere, { recursive: true });
    fs.mkdirSync(mounts, { recursive: true });
    fs.symlinkSync(elsewhere, at('link'));
    const err = await bindDir(src, at('link'), false).catch((e) => e);
    expect(err).toBeInstanceOf(MountError);
    expect(err.code).toMatch(/^E[A-Z]+$/); // the kernel's (EINVAL on 6.x)
    expect(err.message).toContain(`${at('link')} is a symbolic link`);
    expect(await mounter.isMountPoint(elsewhere)).toBe(false);
    expect(fs.lstatSync(at('link')).isSymbolicLink()).toBe(true);
  });

  test('errors name the target and keep the errno code', async () => {
    const src = source('errors');
    fs.writeFileSync(path.join(dir, 'file'), '');
    const notDir = path.join(dir, 'file', 'target');
    const e1 = await bindDir(src, notDir, false).catch((e) => e);
    expect([e1.code, e1.message.includes(notDir)]).toEqual(['ENOTDIR', true]);
    // A descriptor that is not open: the kernel's own refusal, from open_tree.
    const e2 = await mounter.bind(1 << 20, at('badfd'), false).catch((e) => e);
    expect([e2.code, e2.message.includes(at('badfd'))]).toEqual(['EBADF', true]);
    expect(await mounter.isMountPoint(at('badfd'))).toBe(false);
  });
});

rootOnly('bindBeneath', () => {
  test('binds the directory reached by the no-follow walk, read-only when asked, and closes what it opened', async () => {
    source('walked');
    await mounter.release(at('never-bound')); // starts the host workers, which hold fds of their own
    const fds = fs.readdirSync('/proc/self/fd').length;
    await mounter.bindBeneath(path.join(dir, 'src'), 'walked', at('walked'), true);
    expect(fs.readFileSync(path.join(at('walked'), 'seed'), 'utf8')).toBe('seed');
    expect(await writeFails(at('walked'))).toBe('EROFS');
    await mounter.release(at('walked'));
    expect(fs.readdirSync('/proc/self/fd').length).toBe(fds);
  });

  test('a symlink on the way is refused like openBeneath refuses it, and nothing is mounted', async () => {
    const elsewhere = source('elsewhere-walk');
    fs.symlinkSync(elsewhere, path.join(dir, 'src', 'swapped'));
    const err = await mounter.bindBeneath(path.join(dir, 'src'), 'swapped', at('swapped'), false).catch((e) => e);
    expect(err.code).toBe('ENOTDIR');
    expect(err.message).toContain(`${path.join(dir, 'src', 'swapped')} is not a plain directory: it is a symbolic link`);
    expect(await mounter.isMountPoint(at('swapped'))).toBe(false);
  });
});

rootOnly('release', () => {
  test('a missing target is fine', async () => {
    await expect(mounter.release(at('never-made'))).resolves.toBeUndefined();
    await expect(mounter.release(path.join(dir, 'no', 'parent'))).resolves.toBeUndefined();
  });

  test('a busy mount (a process has its cwd inside) is detached and its directory removed', async () => {
    const src = source('busy');
    await bindDir(src, at('busy'), false);
    const holder = spawn('/bin/sleep', ['60'], { cwd: at('busy'), stdio: 'ignore' });
    await new Promise((r) => holder.once('spawn', r));
    try {
      await mounter.release(at('busy'));
      expect(await mounter.isMountPoint(at('busy'))).toBe(false);
      expect(fs.existsSync(at('busy'))).toBe(false);
      // The process keeps its (detached) cwd, still showing the volume.
      expect(fs.readdirSync(`/proc/${holder.pid}/cwd`)).toContain('seed');
    } finally {
      holder.kill('SIGKILL');
    }
  });

  test('mounts stacked at the target (by something else than hostvol) are all removed', async () => {
    const src = source('stacked');
    fs.mkdirSync(at('stacked'), { recursive: true });
    execFileSync('/usr/bin/mount', ['--bind', src, at('stacked')]);
    execFileSync('/usr/bin/mount', ['--bind', src, at('stacked')]);
    expect(await mountsAt(at('stacked'))).toHaveLength(2);
    await mounter.release(at('stacked'));
    expect(await mountsAt(at('stacked'))).toHaveLength(0);
    expect(fs.existsSync(at('stacked'))).toBe(false);
  });

  test('a directory that is not a mount point and not empty is an error naming it', async () => {
    fs.mkdirSync(at('full'), { recursive: true });
    fs.writeFileSync(path.join(at('full'), 'x'), '');
    const err = await mounter.release(at('full')).catch((e) => e);
    expect([err.code, err.message.includes(at('full'))]).toEqual(['ENOTEMPTY', true]);
  });
});

rootOnly('queries', () => {
  test('mountsUnder lists mount points strictly below a directory, deepest first', async () => {
    const src = source('tree');
    const base = path.join(dir, 'tree');
    await bindDir(src, path.join(base, 'a'), false);
    await bindDir(src, path.join(base, 'b', 'c'), false);
    const under = await mounter.mountsUnder(base);
    expect(under.indexOf(path.join(base, 'b', 'c'))).toBeLessThan(under.indexOf(path.join(base, 'a')));
    expect(under).not.toContain(base);
    expect(await mounter.isMountPoint(path.join(base, 'a'))).toBe(true);
    expect(await mounter.isMountPoint(path.join(base, 'b'))).toBe(false);
    for (const m of under) await mounter.release(m);
    expect(await mounter.mountsUnder(base)).toEqual([]);
  });
});

/**
 * A managed plugin's mounts directory is a shared mount whose peer is where dockerd on the host
 * finds the volume. The peer's copy must be read-only too, or containers would write through it.
 */
rootOnly('read-only reaches peers in a shared subtree', () => {
  const shared = path.join(dir, 'shared');
  const peer = path.join(dir, 'peer');
  beforeAll(() => {
    fs.mkdirSync(shared);
    fs.mkdirSync(peer);
    execFileSync('/usr/bin/mount', ['--bind', shared, shared]);
    execFileSync('/usr/bin/mount', ['--make-shared', shared]);
    execFileSync('/usr/bin/mount', ['--bind', shared, peer]);
  });

  test('with open_tree and mount_setattr', async () => {
    const src = source('shared');
    await bindDir(src, path.join(shared, 'v'), true);
    expect(await writeFails(path.join(peer, 'v'))).toBe('EROFS');
    expect(await writeFails(path.join(shared, 'v'))).toBe('EROFS');
    await mounter.release(path.join(shared, 'v'));
    expect(await mounter.isMountPoint(path.join(peer, 'v'))).toBe(false);
  });

  test.each([true, false])('with mount(2) where open_tree is missing (read-only: %s)', async (readOnly) => {
    const src = source(`legacy-${readOnly}`);
    const target = path.join(shared, `legacy-${readOnly}`);
    fs.mkdirSync(target);
    const h = await openDir(src);
    await legacyBind(h.fd, target, readOnly).finally(() => h.close());
    const want = readOnly ? 'EROFS' : 'written';
    expect([await writeFails(target), await writeFails(path.join(peer, path.basename(target)))]).toEqual([want, want]);
    // The staging mount is gone, here and in the peer.
    expect((await mounter.mountsUnder(peer)).filter((m) => m.includes('.staging-'))).toEqual([]);
    await mounter.release(target);
  });
});
