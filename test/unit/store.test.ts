// The SQLite store on real files: what it promises (every change durable before its promise resolves,
// concurrent changes sharing commits, a failing change failing alone, clear errors on a full disk or a
// second hostvol) and what it costs (an event loop that keeps answering, start-up with 100k volumes).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import * as ts from 'typescript';
import { SCHEMA } from '../../src/store/sqlite-worker';
import { SqliteStore } from '../../src/store/sqlite';
import type { VolumeRecord } from '../../src/store/store';

jest.setTimeout(60_000);

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const tempDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostvol-store-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
};
/** A store that has read what is there (as start-up does), closed after the test. */
const open = async (dir: string) => {
  const store = new SqliteStore(dir);
  cleanups.push(() => store.close());
  const snap = await store.load();
  return { store, ...snap, volumes: [...snap.volumes] };
};
const rec = (name: string, more: Partial<VolumeRecord> = {}): VolumeRecord => ({
  name, path: `/srv/${name}`, options: '{"mode":448}', createdBy: 'hostvol', createdAt: '2026-12-01T00:00:00.000Z',
  state: 'ready', made: `/srv/${name}`, ...more,
});

test('every change is read back after close and reopen', async () => {
  const dir = tempDir();
  const { store } = await open(dir);
  await store.insertVolume(rec('a'));
  await store.insertVolume(rec('b', { createdBy: 'existing', made: null, state: 'creating' }));
  await store.insertVolume(rec('gone'));
  await store.setState('b', 'ready');
  await store.setLease({ volume: 'a', id: 'm1', count: 2, bootId: 'boot-1', generation: 3 });
  await store.setLease({ volume: 'a', id: 'm2', count: 1, bootId: 'boot-0', generation: 3 });
  await store.setLease({ volume: 'a', id: 'm3', count: 1, bootId: 'boot-1', generation: 3 });
  await store.setLease({ volume: 'a', id: 'm3', count: 0, bootId: 'boot-1', generation: 3 });
  await store.setLease({ volume: 'gone', id: 'm4', count: 1, bootId: 'boot-1', generation: 3 });
  await store.deleteVolume('gone');
  await store.setGeneration(7);
  expect(await store.dropLeasesFromOtherBoots('boot-1')).toBe(1);
  // The WAL index is in the process's heap (exclusive locking): no -shm file for anyone to map.
  expect(fs.existsSync(path.join(dir, 'hostvol.db-shm'))).toBe(false);
  // close() waits for changes still queued: 'late' is in flight, 'later' waits for the next commit.
  const late = [store.insertVolume(rec('late')), store.insertVolume(rec('later'))];
  await store.close();
  await Promise.all(late);
  await expect(store.setGeneration(8)).rejects.toThrow(`cannot record the client generation: the state store ${path.join(dir, 'hostvol.db')} is closed`);

  const again = await open(dir);
  expect(again.volumes.sort((x, y) => x.name.localeCompare(y.name))).toEqual([rec('a'), rec('b', { createdBy: 'existing', made: null }), rec('late'), rec('later')]);
  expect(again.leases).toEqual([{ volume: 'a', id: 'm1', count: 2, bootId: 'boot-1', generation: 3 }]);
  expect(again.generation).toBe(7);
});

test('200 concurrent changes share a handful of commits, and all of them land', async () => {
  const dir = tempDir();
  const { store } = await open(dir);
  const names = Array.from({ length: 200 }, (_, i) => `v${i}`);
  await Promise.all(names.map((n) => store.insertVolume(rec(n))));
  const { commits, ops } = store.stats();
  expect(ops).toBe(200);
  expect(commits).toBeLessThanOrEqual(5);
  await store.close();
  expect((await open(dir)).volumes.map((v) => v.name).sort()).toEqual([...names].sort());
});

test('a change that fails in a shared commit fails alone; the others in it commit', async () => {
  const dir = tempDir();
  const { store } = await open(dir);
  await store.insertVolume(rec('taken'));
  const lease = { volume: 'taken', id: 'm1', count: 1, bootId: 'boot-1', generation: 1 };
  const first = store.setLease(lease); // in flight: the next three queue up behind it
  const results = await Promise.allSettled([
    store.insertVolume(rec('x')),
    store.setLease({ ...lease, id: 'm2' }, { exclusive: true }),
    store.setState('x', 'removing'),
  ]);
  await first;
  expect(store.stats()).toEqual({ commits: 3, ops: 5 });
  expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  expect((results[1] as PromiseRejectedResult).reason.message).toMatch(/^volume "taken" is single-writer \(option Z\) and is already mounted by another container/);
  await store.close();
  const after = await open(dir);
  expect(after.volumes.sort((a, b) => a.name.localeCompare(b.name))).toEqual([rec('taken'), rec('x', { state: 'removing' })]);
  expect(after.leases).toEqual([lease]);
});

test('the cluster rules over one host: a record found is handed back, leases need a ready volume, Z one Mount ID', async () => {
  const dir = tempDir();
  const { store } = await open(dir);
  expect(store.scope).toBe('local');
  expect(await store.insertVolume(rec('a'))).toBeUndefined();
  // Another record of that name (the driver's table did not know it): nothing written, the record handed back.
  expect(await store.insertVolume(rec('a', { path: '/elsewhere' }))).toEqual(rec('a'));
  const lease = { volume: 'a', id: 'm1', count: 1, bootId: 'boot-1', generation: 1 };
  const t1 = await store.setLease(lease, { exclusive: true });
  // The same Mount ID again (docker cp) is not another writer; a second one is.
  const t2 = await store.setLease({ ...lease, count: 2 }, { exclusive: true });
  expect(t2).toBeGreaterThan(t1);
  await expect(store.setLease({ ...lease, id: 'm2' }, { exclusive: true })).rejects.toThrow('volume "a" is single-writer (option Z)');
  expect(await store.setLease({ ...lease, id: 'm2' })).toBeGreaterThan(t2);
  await store.setState('a', 'removing');
  await expect(store.setLease({ ...lease, id: 'm3' })).rejects.toThrow('volume "a" is being removed; it cannot be mounted');
  await expect(store.setLease({ ...lease, volume: 'nope' })).rejects.toThrow('volume "nope" is not recorded');
  expect(store.health()).toEqual({ available: true });
  expect(typeof store.watch(() => undefined)).toBe('function');
});

test('a second store on the same state directory is refused, whether or not the first has written', async () => {
  const dir = tempDir();
  const { store } = await open(dir);
  const first = new SqliteStore(dir);
  cleanups.push(() => first.close());
  await expect(first.load()).rejects.toThrow(
    `state directory ${dir} is in use by another hostvol process; stop it, or give this one another --state-dir`,
  );
  await store.insertVolume(rec('a'));
  await store.close();
  const { store: reopened } = await open(dir);
  const second = new SqliteStore(dir);
  cleanups.push(() => second.close());
  await expect(second.load()).rejects.toThrow(/is in use by another hostvol process/);
  await reopened.insertVolume(rec('b'));
});

/** src/ compiled for a plain `node` child (no ts-jest there), in a temp dir that mirrors src/. */
const compileStore = () => {
  const out = tempDir();
  const src = path.join(__dirname, '../../src');
  for (const f of ['errors.ts', ...fs.readdirSync(path.join(src, 'store')).map((f) => `store/${f}`)]) {
    const js = ts.transpileModule(fs.readFileSync(path.join(src, f), 'utf8'), { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } });
    fs.mkdirSync(path.dirname(path.join(out, f)), { recursive: true });
    fs.writeFileSync(path.join(out, f.replace(/\.ts$/, '.js')), js.outputText);
  }
  return path.join(out, 'store/sqlite.js');
};

test('each change resolves only once committed: a process killed right after a resolve loses none', async () => {
  const dir = tempDir();
  const resolvedLog = path.join(tempDir(), 'resolved');
  // Twenty writers, each starting its next change when the last resolves, so a commit is in flight
  // (and more changes are queued) at the moment the process dies.
  const child = `
    const fs = require('node:fs');
    const { SqliteStore } = require(${JSON.stringify(compileStore())});
    const log = fs.openSync(${JSON.stringify(resolvedLog)}, 'w');
    const store = new SqliteStore(${JSON.stringify(dir)});
    let n = 0, resolved = 0;
    const next = () => {
      const name = 'v' + n++;
      store.insertVolume({ name, path: '/srv/' + name, options: '{}', createdBy: 'hostvol',
        createdAt: 'now', state: 'ready', made: null }).then(() => {
        fs.writeSync(log, name + '\\n');
        if (++resolved === 400) process.kill(process.pid, 'SIGKILL');
        next();
      });
    };
    store.load().then(() => { for (let i = 0; i < 20; i++) next(); });`;
  const r = spawnSync(process.execPath, ['-e', child], { env: { ...process.env, NODE_PATH: path.join(__dirname, '../../node_modules') } });
  expect({ signal: r.signal, stderr: r.stderr.toString() }).toEqual({ signal: 'SIGKILL', stderr: '' });
  const resolved = fs.readFileSync(resolvedLog, 'utf8').split('\n').filter(Boolean);
  expect(resolved).toHaveLength(400);
  const stored = new Set((await open(dir)).volumes.map((v) => v.name));
  expect(resolved.filter((n) => !stored.has(n))).toEqual([]);
});

test('the commit is fsynced, and the new files\' directory entries too, before the first change resolves', async () => {
  const dir = path.join(tempDir(), 'state');
  const trace = path.join(tempDir(), 'strace');
  const child = `
    const { SqliteStore } = require(${JSON.stringify(compileStore())});
    const store = new SqliteStore(${JSON.stringify(dir)});
    store.load().then(() => store.insertVolume({ name: 'v', path: '/srv/v', options: '{}', createdBy: 'hostvol',
      createdAt: 'now', state: 'ready', made: null })).then(() => { require('node:fs').writeSync(1, 'RESOLVED'); return store.close(); });`;
  // -y prints the path of every file descriptor, so the calls can be matched to the files.
  const r = spawnSync('strace', ['-f', '-qq', '-y', '-o', trace, '-e', 'trace=openat,fsync,fdatasync,write', process.execPath, '-e', child], {
    env: { ...process.env, NODE_PATH: path.join(__dirname, '../../node_modules') },
  });
  expect({ status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() }).toEqual({ status: 0, stdout: 'RESOLVED', stderr: '' });
  const lines = fs.readFileSync(trace, 'utf8').split('\n');
  const after = (start: number, re: RegExp) => lines.findIndex((l, i) => i > start && re.test(l));
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const synced = (file: string) => new RegExp(`f(data)?sync\\(\\d+<${esc(file)}>`);
  const walCreated = after(-1, new RegExp(`openat\\(.*"${esc(dir)}/hostvol\\.db-wal", [^)]*O_CREAT`));
  const resolved = after(-1, /write\(1<.*"RESOLVED"/);
  expect(walCreated).toBeGreaterThanOrEqual(0);
  // The state directory (after its files appeared), its parent (the directory is new), the commit.
  const dirSynced = after(walCreated, synced(dir));
  expect(dirSynced).toBeGreaterThan(walCreated);
  expect(dirSynced).toBeLessThan(resolved);
  expect(after(-1, synced(path.dirname(dir)))).toBeGreaterThanOrEqual(0);
  expect(after(-1, synced(path.dirname(dir)))).toBeLessThan(resolved);
  expect(after(dirSynced, synced(`${dir}/hostvol.db-wal`))).toBeLessThan(resolved);
  expect(after(dirSynced, synced(`${dir}/hostvol.db-wal`))).toBeGreaterThan(dirSynced);
});

test('a full disk fails every change of the commit, says what and how to fix; freeing space is enough', async () => {
  const mnt = tempDir();
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
  cleanups.push(() => {
    execFileSync('umount', ['-l', mnt]);
  });
  const dir = path.join(mnt, 'state');
  const { store } = await open(dir);
  await store.insertVolume(rec('before'));
  const filler = path.join(mnt, 'filler');
  const fd = fs.openSync(filler, 'w');
  try {
    for (;;) fs.writeSync(fd, Buffer.alloc(4096));
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
  const big = rec('big', { options: JSON.stringify({ note: 'x'.repeat(100_000) }) });
  const results = await Promise.allSettled([store.insertVolume(big), store.setState('before', 'removing')]);
  const file = path.join(dir, 'hostvol.db');
  expect(results.map((r) => (r as PromiseRejectedResult).reason?.message)).toEqual([
    expect.stringMatching(new RegExp(`^cannot record volume "big" in the state store ${file}: SQLITE_FULL: .*; free space on its file system or make it writable, then try again$`)),
    expect.stringMatching(new RegExp(`^cannot mark volume "before" removing in the state store ${file}: SQLITE_FULL: .*; free space`)),
  ]);
  fs.rmSync(filler);
  await store.insertVolume(big);
  await store.close();
  const after = (await open(dir)).volumes.sort((a, b) => a.name.localeCompare(b.name));
  expect(after.map((v) => [v.name, v.state, v.options.length])).toEqual([['before', 'ready', rec('before').options.length], ['big', 'ready', big.options.length]]);
});

test('a store on a read-only file system is refused at load, with what to fix', async () => {
  const mnt = tempDir();
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
  cleanups.push(() => {
    execFileSync('umount', ['-l', mnt]);
  });
  const dir = path.join(mnt, 'state');
  await (await open(dir)).store.close();
  execFileSync('mount', ['-o', 'remount,ro', mnt]);
  await expect(open(dir)).rejects.toThrow(new RegExp(`^cannot open the state store ${dir}/hostvol\\.db: SQLITE_\\w+: .*; ${dir} must be on a writable file system with free space$`));
});

test('the event loop stays idle while the worker commits: 500 commits, each fsynced', async () => {
  const { store } = await open(tempDir());
  // A timer every millisecond measures how late the loop answers; utilization is the share of the
  // time the loop was busy (run on this thread, 500 synchronous commits keep it at 1.00).
  let late = 0;
  let sampling = true;
  const sample = (due: number) =>
    setTimeout(() => {
      late = Math.max(late, performance.now() - due);
      if (sampling) sample(performance.now() + 1);
    }, 1);
  sample(performance.now() + 1);
  const before = performance.eventLoopUtilization();
  const start = performance.now();
  for (let i = 0; i < 500; i++) await store.insertVolume(rec(`v${i}`));
  const { utilization } = performance.eventLoopUtilization(before);
  sampling = false;
  const total = performance.now() - start;
  console.log(
    `500 writes one after another: ${total.toFixed(0)} ms in ${store.stats().commits} commits; ` +
      `event loop busy ${(utilization * 100).toFixed(0)} % of the time, a timer at most ${late.toFixed(1)} ms late`,
  );
  expect(store.stats().commits).toBe(500);
  expect(utilization).toBeLessThan(0.6); // busy on this thread the whole time it would be 1
});

test('an old store without lease generations opens; its leases are in generation 0', async () => {
  const dir = tempDir();
  const db = new Database(path.join(dir, 'hostvol.db'));
  db.pragma('journal_mode = WAL');
  db.exec(SCHEMA.replace('generation INTEGER NOT NULL DEFAULT 0,', ''));
  db.prepare(`INSERT INTO volumes VALUES ('a', '/srv/a', '{}', 'hostvol', '2026-12-01T00:00:00.000Z', 'ready', NULL)`).run();
  db.prepare(`INSERT INTO leases (volume, id, count, boot_id) VALUES ('a', 'm', 1, 'b')`).run();
  db.close();
  const { store, leases } = await open(dir);
  expect(leases).toEqual([{ volume: 'a', id: 'm', count: 1, bootId: 'b', generation: 0 }]);
  await store.setLease({ volume: 'a', id: 'n', count: 1, bootId: 'b', generation: 2 });
  await store.close();
  expect((await open(dir)).leases.map((l) => l.generation).sort()).toEqual([0, 2]);
});

test('start-up with 100k volumes: read, then the worker takes the file for the first change', async () => {
  const dir = tempDir();
  const db = new Database(path.join(dir, 'hostvol.db'));
  db.pragma('journal_mode = WAL');
  db.exec(SCHEMA);
  const insert = db.prepare('INSERT INTO volumes VALUES (?, ?, ?, ?, ?, ?, ?)');
  db.transaction(() => {
    for (let i = 0; i < 100_000; i++) insert.run(`vol-${i}`, `/srv/vol-${i}`, '{"mode":448}', 'hostvol', '2026-12-01T00:00:00.000Z', 'ready', `/srv/vol-${i}`);
  })();
  db.close();

  const start = performance.now();
  const store = new SqliteStore(dir);
  cleanups.push(() => store.close());
  const snap = await store.load();
  const byName = new Map<string, VolumeRecord>();
  for (const v of snap.volumes) byName.set(v.name, v);
  const read = performance.now() - start;
  await store.setGeneration(1);
  const total = performance.now() - start;
  console.log(`100k volumes: read in ${read.toFixed(0)} ms, first change committed at ${total.toFixed(0)} ms`);
  expect(byName.size).toBe(100_000);
  // One string for every repeated value (memory), and `made` is the path itself when they are equal.
  const [a, b] = [byName.get('vol-1')!, byName.get('vol-2')!];
  expect(a.options === b.options && a.state === b.state && a.made === a.path).toBe(true);
});
