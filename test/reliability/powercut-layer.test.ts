// The power-cut instrument itself: after `cut()` a lazyfs mount shows exactly what its model (header
// of lib/powercut/lazyfs.py) says a disk keeps -- synced data and entries, nothing else.
import Database from 'better-sqlite3';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PowerCut, powercutToolsMissing } from './lib/powercut';

jest.setTimeout(60_000); // each cut starts a new Python process: seconds on a loaded 2-core host
const missing = powercutToolsMissing();
const describeLayer = missing ? describe.skip : describe;
if (missing) console.warn(`power-cut layer tests skipped: ${missing}`);
const noStrace = spawnSync('strace', ['-V']).error;
const testTraced = noStrace ? test.skip : test;
if (noStrace) console.warn('the stalled-read test of lazyfs is skipped: it needs strace (apt-get install strace)');

let root: string;
let backing: string;
let mnt: string;
let pc: PowerCut;
const at = (...p: string[]) => path.join(mnt, ...p);

function write(file: string | Buffer, data: string, opts: { sync: boolean; flag?: string }): void {
  const fd = fs.openSync(file, opts.flag ?? 'w', 0o644);
  fs.writeSync(fd, data);
  if (opts.sync) fs.fsyncSync(fd);
  fs.closeSync(fd);
}
/** fsync of an inode by path: a file's data+metadata, or (via FUSE fsyncdir) a directory's entries. */
function sync(p: string | Buffer): void {
  const fd = fs.openSync(p, fs.constants.O_RDONLY);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
}
const read = (p: string) => fs.readFileSync(p, 'utf8');
const getxattr = (p: string, name: string) => {
  try {
    return execFileSync('getfattr', ['--only-values', '-n', name, p], { encoding: 'utf8', stdio: 'pipe' });
  } catch {
    return null;
  }
};

describeLayer('lazyfs keeps exactly what was synced across a power cut', () => {
  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'hostvol-powercut-'));
    backing = path.join(root, 'backing');
    mnt = path.join(root, 'mnt');
    fs.mkdirSync(backing);
    fs.mkdirSync(mnt);
    fs.writeFileSync(path.join(backing, 'old'), 'durable at mount');
    fs.mkdirSync(path.join(backing, 'src'));
    fs.mkdirSync(path.join(backing, 'dst'));
    pc = await PowerCut.mount(backing, mnt);
  });
  afterEach(async () => {
    await pc.unmount();
    fs.rmSync(root, { recursive: true, force: true });
  });

  describe('file data', () => {
    test('a write never synced is gone: the file reverts to its last durable content', async () => {
      write(at('old'), 'overwritten', { sync: false });
      write(at('old'), ' and appended', { sync: false, flag: 'a' });
      expect(read(at('old'))).toBe('overwritten and appended');
      const stats = await pc.cut();
      expect(read(at('old'))).toBe('durable at mount');
      expect(stats.discardedWriteBytes).toBe('overwritten and appended'.length);
    });

    test('a synced write (fsync or fdatasync) survives, a later unsynced truncate does not', async () => {
      write(at('old'), 'synced', { sync: true });
      fs.truncateSync(at('old'), 2);
      expect(await pc.stats()).toMatchObject({ fsyncs: 1, fsyncdirs: 0 });
      await pc.cut();
      expect(read(at('old'))).toBe('synced');
      const fd = fs.openSync(at('old'), 'w');
      fs.writeSync(fd, 'datasynced');
      fs.fdatasyncSync(fd);
      fs.closeSync(fd);
      await pc.cut();
      expect(read(at('old'))).toBe('datasynced');
    });

    test('a file whose entry was synced but whose data never was is empty', async () => {
      write(at('new'), 'not synced', { sync: false });
      sync(mnt);
      await pc.cut();
      expect(read(at('new'))).toBe('');
    });
  });

  describe('directory entries', () => {
    test('a created file synced but whose directory was not is gone; with the directory synced it stays', async () => {
      write(at('a'), 'A', { sync: true });
      await pc.cut();
      expect(fs.existsSync(at('a'))).toBe(false);
      write(at('a'), 'A', { sync: true });
      sync(mnt);
      await pc.cut();
      expect(read(at('a'))).toBe('A');
    });

    test('an unlink not synced in its directory is undone, content intact; synced, it holds', async () => {
      fs.unlinkSync(at('old'));
      await pc.cut();
      expect(read(at('old'))).toBe('durable at mount');
      fs.unlinkSync(at('old'));
      sync(mnt);
      await pc.cut();
      expect(fs.existsSync(at('old'))).toBe(false);
    });

    test('mkdir -p survives only if each new parent is synced: one unsynced link loses the subtree', async () => {
      fs.mkdirSync(at('a/b/c'), { recursive: true });
      write(at('a/b/c/f'), 'deep', { sync: true });
      for (const d of ['a/b/c', 'a/b', 'a']) sync(at(d));
      // mnt itself not synced: a is not durably linked, so nothing below it is either.
      await pc.cut();
      expect(fs.existsSync(at('a'))).toBe(false);
      fs.mkdirSync(at('a/b/c'), { recursive: true });
      write(at('a/b/c/f'), 'deep', { sync: true });
      for (const d of ['a/b/c', 'a/b', 'a', '.']) sync(at(d));
      await pc.cut();
      expect(read(at('a/b/c/f'))).toBe('deep');
    });

    test('symlinks and hard links come back as such once their directories are synced', async () => {
      fs.symlinkSync('old', at('ln'));
      fs.linkSync(at('old'), at('hard'));
      sync(mnt);
      await pc.cut();
      expect(fs.readlinkSync(at('ln'))).toBe('old');
      expect(fs.statSync(at('hard')).ino).toBe(fs.statSync(at('old')).ino);
      expect(fs.statSync(at('old')).nlink).toBe(2);
    });

    test('non-UTF-8 names: kept byte for byte when synced, gone when not', async () => {
      const name = (b: number[]) => Buffer.concat([Buffer.from(`${mnt}/`), Buffer.from(b)]);
      write(name([0x66, 0xff, 0x0a, 0xc3]), 'kept', { sync: true });
      sync(mnt);
      write(name([0xfe, 0x80]), 'lost', { sync: true });
      await pc.cut();
      const names = fs.readdirSync(Buffer.from(mnt), { encoding: 'buffer' }).map((b) => b.toString('hex'));
      expect(names).toContain('66ff0ac3');
      expect(names).not.toContain('fe80');
      expect(fs.readFileSync(name([0x66, 0xff, 0x0a, 0xc3]), 'utf8')).toBe('kept');
    });
  });

  describe('rename: the new name is durable with the target directory, the removal with the source', () => {
    beforeEach(async () => {
      write(at('src/f'), 'F', { sync: true });
      sync(at('src'));
      fs.renameSync(at('src/f'), at('dst/g'));
    });
    const where = () => ({ src: fs.existsSync(at('src/f')), dst: fs.existsSync(at('dst/g')) });

    test('neither directory synced: the file is still at its old name', async () => {
      await pc.cut();
      expect(where()).toEqual({ src: true, dst: false });
    });
    test('only the source synced: the file is gone from both', async () => {
      sync(at('src'));
      await pc.cut();
      expect(where()).toEqual({ src: false, dst: false });
    });
    test('only the target synced: the file is under both names, one inode', async () => {
      sync(at('dst'));
      await pc.cut();
      expect(where()).toEqual({ src: true, dst: true });
      expect(fs.statSync(at('src/f')).ino).toBe(fs.statSync(at('dst/g')).ino);
    });
    test('both synced: only the new name, with the content', async () => {
      sync(at('src'));
      sync(at('dst'));
      await pc.cut();
      expect(where()).toEqual({ src: false, dst: true });
      expect(read(at('dst/g'))).toBe('F');
    });
    test('a directory moves as a whole when the target is synced, and stays when only the source is', async () => {
      fs.mkdirSync(at('src/d'));
      write(at('src/d/x'), 'X', { sync: true });
      sync(at('src/d'));
      sync(at('src'));
      fs.renameSync(at('src/d'), at('dst/d'));
      sync(at('src'));
      await pc.cut();
      expect(read(at('src/d/x'))).toBe('X');
      fs.renameSync(at('src/d'), at('dst/d'));
      sync(at('dst'));
      await pc.cut();
      expect([fs.existsSync(at('src/d')), read(at('dst/d/x'))]).toEqual([false, 'X']);
    });
  });

  describe('metadata: mode, owner and xattrs are durable at fsync of that inode only', () => {
    test.each(['old', 'src'])('%s: changes unsynced are lost, synced are kept', async (name) => {
      const p = at(name);
      const before = fs.statSync(p);
      fs.chmodSync(p, 0o700);
      fs.chownSync(p, 1234, 5678);
      execFileSync('setfattr', ['-n', 'user.k', '-v', 'v1', p]);
      sync(mnt);
      await pc.cut();
      const lost = fs.statSync(p);
      expect([lost.mode, lost.uid, lost.gid, getxattr(p, 'user.k')]).toEqual([before.mode, before.uid, before.gid, null]);
      fs.chmodSync(p, 0o700);
      fs.chownSync(p, 1234, 5678);
      execFileSync('setfattr', ['-n', 'user.k', '-v', 'v1', p]);
      sync(p);
      await pc.cut();
      const kept = fs.statSync(p);
      expect([kept.mode & 0o7777, kept.uid, kept.gid, getxattr(p, 'user.k')]).toEqual([0o700, 1234, 5678, 'v1']);
    });
  });

  test('users of the mount at the cut see errors, not the new state', async () => {
    const fd = fs.openSync(at('old'), 'r+');
    await pc.cut();
    expect(() => fs.writeSync(fd, 'late')).toThrow(/ENOTCONN/);
    expect(() => fs.closeSync(fd)).toThrow(/ENOTCONN/); // the fd is released all the same
    expect(read(at('old'))).toBe('durable at mount');
  });

  testTraced('a request withdrawn because its process was killed does not stall the layer: the control socket still answers', async () => {
    // The kernel withdraws a waiting request when its process is killed (a cut does this to hostvol).
    // If lazyfs had just seen /dev/fuse readable, its read(2) then blocked its one thread until some
    // other request came, and the "cut" that followed was never answered (the 200-cut run hung so).
    // strace holds each read(2) of lazyfs for 2 s at entry: the requester is killed inside that window.
    const tracer = spawn('strace', ['-p', String(pc.pid), '-e', 'trace=read', '-e', 'inject=read:delay_enter=2000000', '-o', '/dev/null'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const traced = new Promise<void>((resolve) => tracer.stderr!.on('data', (d: Buffer) => d.toString().includes('attached') && resolve()));
    const detached = new Promise((r) => tracer.once('exit', r));
    try {
      await traced;
      const victim = spawn('stat', ['-f', mnt], { stdio: 'ignore' });
      const gone = new Promise((r) => victim.once('exit', r));
      const waiting = () => fs.readFileSync(`/proc/${victim.pid}/wchan`, 'utf8');
      for (let i = 0; i < 150 && !/fuse|request_wait_answer/.test(waiting()); i++) await new Promise((r) => setTimeout(r, 10));
      expect(waiting()).toMatch(/fuse|request_wait_answer/); // its statfs waits, unread by lazyfs
      victim.kill('SIGKILL');
      await gone;
      await expect(pc.stats(10_000)).resolves.toMatchObject({ cuts: 0 });
    } finally {
      tracer.kill('SIGINT'); // detaches; lazyfs goes on untraced
      await detached;
    }
  });

  test('SQLite in WAL mode: commits with synchronous=FULL survive; with OFF, or still open, they do not', async () => {
    const db = new Database(at('db.sqlite'));
    db.pragma('journal_mode = WAL');
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)');
    const put = db.prepare('INSERT INTO t (v) VALUES (?)');
    for (let i = 0; i < 50; i++) put.run(`committed ${i}`);
    sync(mnt); // SQLite syncs the directory only when it creates the journal, not the db: do it here
    db.pragma('synchronous = OFF'); // commits reach the WAL file but are never fsynced
    for (let i = 0; i < 50; i++) put.run(`unsynced ${i}`);
    db.exec('BEGIN');
    for (let i = 0; i < 50; i++) put.run(`uncommitted ${i}`);
    const { discardedWriteBytes } = await pc.cut();
    expect(discardedWriteBytes).toBeGreaterThan(0);
    try {
      db.close(); // the connection lived on the mount that was cut: its rollback may fail, harmlessly
    } catch {
      /* ENOTCONN underneath */
    }
    const after = new Database(at('db.sqlite'));
    const rows = after.prepare('SELECT v FROM t ORDER BY k').pluck().all();
    after.close();
    expect(rows).toEqual(Array.from({ length: 50 }, (_, i) => `committed ${i}`));
  });
});
