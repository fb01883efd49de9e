// Issue 5, group 6: slow or failing disk. The state directory on a full tmpfs or remounted read-only,
// the data root full or read-only, labelling that is slow or fails: Create fails with a clear Err,
// nothing half-made remains, and Get/List keep answering for the volumes that exist (dockerd forgets
// a volume whose Get fails). Every step is also checked after a restart.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isErr, isOk } from './lib/client';
import { Invariants, recordFigures } from './lib/figures';
import { Sandbox, mountTable, umountAllUnder } from './lib/sandbox';
import { Serve, requireBuild, serveExpectingExit, type ServeConfig } from './lib/serve';
import { readStoreCopy } from './lib/store';
import { failedCleanly, fill, stillAnswering } from './lib/disk-checks';

let sb: Sandbox;
const inv = new Invariants();
const started = Date.now();
let attempts = 0;

beforeAll(() => {
  requireBuild();
  sb = new Sandbox('disk');
});

afterAll(() => {
  recordFigures('disk', {
    title: '6. slow or failing disk',
    durationMs: Date.now() - started,
    checks: inv.checks,
    violations: inv.violations.length,
    notes: `${attempts} Creates against a full, read-only or failing disk`,
  });
  sb?.cleanup();
});

async function checked(fn: () => Promise<void>): Promise<void> {
  const first = inv.violations.length;
  await fn();
  const mine = inv.violations.slice(first);
  if (mine.length) throw new Error(`${mine.length} invariant violation(s):\n${mine.join('\n')}`);
}

function config(tag: string, over: Partial<ServeConfig> = {}): ServeConfig {
  return {
    socket: sb.path(`${tag}.sock`),
    dataRoot: sb.path(tag, 'data'),
    stateDir: sb.path(tag, 'state'),
    bootIdFile: sb.bootId('3f6c0f2e-0000-4000-8000-000000000000'),
    logFile: sb.path(`${tag}.log`),
    ...over,
  };
}

test('state directory on a full file system: Create fails clearly, nothing half-made, Get/List answer', () =>
  checked(async () => {
    const fsDir = sb.path('full-state');
    // Room for SQLite's WAL to reach its checkpoint size (1000 pages), as on any real disk.
    sb.mountTmpfs(fsDir, '8m');
    const cfg = config('full', { stateDir: path.join(fsDir, 'state') });
    let s = await Serve.start(cfg);
    try {
      await s.client.ok('/VolumeDriver.Create', { Name: 'a', Opts: null });
      await s.client.ok('/VolumeDriver.Create', { Name: 'b', Opts: { ro: '' } });
      await s.client.ok('/VolumeDriver.Mount', { Name: 'b', ID: 'm1' });
      const filler = fill(fsDir);

      attempts++;
      const r = await s.client.create('c', null);
      if (inv.check(isErr(r), () => `Create c on a full state dir: ${r.text}`)) {
        await failedCleanly(inv, s, 'c', path.join(cfg.dataRoot, 'c'), r.json.Err, /full|space/i);
      }
      await stillAnswering(inv, s, ['a', 'b'], 'state dir full');
      // Writes that fail must leave the volume as it was.
      const m = await s.client.mount('a', 'm2');
      inv.check(isErr(m) || isOk(m), 'Mount on a full state dir: malformed reply');
      const rm = await s.client.remove('a');
      if (isErr(rm)) inv.check(fs.existsSync(path.join(cfg.dataRoot, 'a')), 'a refused Remove deleted the data of a');
      const um = await s.client.unmount('b', 'm1');
      inv.check(isErr(um) || isOk(um), 'Unmount on a full state dir: malformed reply');
      await stillAnswering(inv, s, isErr(rm) ? ['a', 'b'] : ['b'], 'after failed writes');

      // Free the space page by page: at every step a Create either works or fails cleanly, and an
      // immediate retry never reports a volume that does not exist.
      const known = isErr(rm) ? ['a', 'b'] : ['b'];
      let failedSteps = 0;
      const size = fs.statSync(filler).size;
      for (let left = size, i = 0; left > 0 && i < 60; left -= 4096, i++) {
        fs.truncateSync(filler, Math.max(0, left));
        const name = `s${i}`;
        const dir = path.join(cfg.dataRoot, name);
        for (let retry = 0; retry < 2; retry++) {
          attempts++;
          const c = await s.client.create(name, null);
          if (isOk(c)) {
            inv.check(fs.existsSync(dir), `Create ${name} acknowledged without its directory`);
            inv.check(isOk(await s.client.get(name)), `Create ${name} acknowledged but Get fails (retry ${retry})`);
            known.push(name);
            break;
          }
          failedSteps++;
          await failedCleanly(inv, s, name, dir, c.json?.Err ?? c.text, /full|space/i);
        }
        if (known.length > 12) break;
      }
      inv.check(failedSteps > 0, 'no Create failed while the state dir was nearly full (the test did not test anything)');
      await stillAnswering(inv, s, known, 'while freeing space');
      if (process.env.RELIABILITY_DEBUG) console.log({ failedSteps, known });
      fs.rmSync(filler, { force: true });
      attempts++;
      const after = await s.client.create('after', null);
      inv.check(isOk(after), () => `Create after space was freed: ${after.text}`);
      known.push('after');

      // The store on disk is consistent with what was acknowledged.
      await s.kill();
      const copy = readStoreCopy(cfg.stateDir);
      inv.check(copy.integrity === 'ok', `store integrity: ${copy.integrity}`);
      s = await Serve.start(cfg);
      await stillAnswering(inv, s, known, 'after a restart');
      const names = await s.client.names();
      inv.check(JSON.stringify(names) === JSON.stringify([...known].sort()), () => `after restart List ${names} / acknowledged ${[...known].sort()}`);
      const dirs = fs.readdirSync(cfg.dataRoot).sort();
      inv.check(JSON.stringify(dirs) === JSON.stringify([...known].sort()), () => `data root holds ${dirs}, volumes are ${[...known].sort()}`);
    } finally {
      await s.kill();
    }
  }), 120_000);

test('state directory on a file system that turns read-only: Create fails clearly, Get/List answer, a restart recovers', () =>
  checked(async () => {
    // ext4 with errors=remount-ro, made to fail: how a real disk error turns the state dir read-only
    // under a running hostvol (tmpfs cannot be remounted read-only while the store is open for writing).
    const img = sb.path('state.img');
    const fsDir = sb.dir('ro-state');
    try {
      execFileSync('truncate', ['-s', '16M', img]);
      execFileSync('mkfs.ext4', ['-q', '-F', img], { stdio: 'pipe' });
      execFileSync('mount', ['-o', 'loop,errors=remount-ro', img, fsDir], { stdio: 'pipe' });
    } catch (err) {
      throw new Error(`this test needs mkfs.ext4 (e2fsprogs) and loop devices (/dev/loop-control): ${(err as Error).message}`);
    }
    const cfg = config('ro', { stateDir: path.join(fsDir, 'state') });
    let s = await Serve.start(cfg);
    try {
      await s.client.ok('/VolumeDriver.Create', { Name: 'ra', Opts: null });
      await s.client.ok('/VolumeDriver.Create', { Name: 'rro', Opts: { ro: '' } });
      await s.client.ok('/VolumeDriver.Mount', { Name: 'rro', ID: 'm1' });
      const dev = path.basename(execFileSync('findmnt', ['-n', '-o', 'SOURCE', fsDir]).toString().trim());
      const trigger = `/sys/fs/ext4/${dev}/trigger_fs_error`;
      if (!fs.existsSync(trigger)) throw new Error(`this test needs ${trigger} (Linux 5.x or later) to make the file system fail`);
      fs.writeFileSync(trigger, '1');
      let ro = false;
      try {
        fs.writeFileSync(path.join(fsDir, 'probe'), 'x');
      } catch (err) {
        ro = (err as NodeJS.ErrnoException).code === 'EROFS';
      }
      inv.check(ro, 'the state file system did not turn read-only (test assumption)');

      attempts++;
      const r = await s.client.create('rb', null);
      if (inv.check(isErr(r), () => `Create rb on a read-only state dir: ${r.text}`)) {
        await failedCleanly(inv, s, 'rb', path.join(cfg.dataRoot, 'rb'), r.json.Err, /read-only|readonly|I\/O error/i);
      }
      await stillAnswering(inv, s, ['ra', 'rro'], 'state dir read-only');
      for (const [what, call] of [['Mount ra', () => s.client.mount('ra', 'm2')], ['Unmount rro', () => s.client.unmount('rro', 'm1')],
        ['Remove ra', () => s.client.remove('ra')]] as const) {
        const x = await call();
        inv.check(isErr(x) || isOk(x), `${what} on a read-only state dir: malformed reply`);
      }
      inv.check(fs.existsSync(path.join(cfg.dataRoot, 'ra')), 'a Remove that could not be recorded deleted the data of ra');
      await stillAnswering(inv, s, ['ra', 'rro'], 'after writes were refused');
      inv.check(s.alive(), 'hostvol died when its state dir turned read-only');

      // The operator repairs the file system and restarts hostvol: what was acknowledged is there.
      await s.kill('SIGTERM');
      umountAllUnder(fsDir); // the bind mount of rro lives in the state dir

      execFileSync('sh', ['-c', `e2fsck -fy ${img} >/dev/null 2>&1; true`]);
      execFileSync('mount', ['-o', 'loop', img, fsDir]);
      s = await Serve.start(cfg);
      await stillAnswering(inv, s, ['ra', 'rro'], 'after repair and restart');
      const names = await s.client.names();
      inv.check(JSON.stringify(names) === JSON.stringify(['ra', 'rro']), () => `after repair: List ${names}`);
      attempts++;
      inv.check(isOk(await s.client.create('rb', null)), 'Create after repair');

      // Started on a read-only state dir: the store cannot be opened (SQLite needs its lock and WAL
      // writable), so hostvol must refuse at once with a message that says why. dockerd treats the
      // missing plugin as "cannot tell" (a transport error) and keeps its volumes.
      await s.kill('SIGTERM');
      execFileSync('mount', ['-o', 'remount,ro', fsDir]);
      const refused = await serveExpectingExit(cfg);
      inv.check(refused.code !== 0 && /state store .* must be on a writable file system/.test(refused.output),
        () => `start on a read-only state dir: exit ${refused.code}: ${refused.output.slice(-400)}`);
      inv.check(!fs.existsSync(cfg.socket), 'a refused start left its socket behind');
      execFileSync('mount', ['-o', 'remount,rw', fsDir]);
      s = await Serve.start(cfg);
      await stillAnswering(inv, s, ['ra', 'rro', 'rb'], 'restarted writable');
    } finally {
      await s.kill();
    }
  }), 120_000);

test('data root full or read-only: Create fails clearly and leaves no record', () =>
  checked(async () => {
    const fsDir = sb.path('full-data');
    sb.mountTmpfs(fsDir, '64k', 'nr_inodes=64');
    const cfg = config('fdata', { dataRoot: path.join(fsDir, 'data'), allowPaths: [fsDir] });
    const s = await Serve.start(cfg);
    try {
      await s.client.ok('/VolumeDriver.Create', { Name: 'd1', Opts: null });
      // tmpfs counts inodes too: fill the blocks, then directories until mkdir fails.
      fill(fsDir);
      for (let i = 0; ; i++) {
        try {
          fs.mkdirSync(path.join(fsDir, `inode${i}`));
        } catch {
          break;
        }
      }
      for (const [name, opts] of [['d2', null], ['d3', { path: path.join(fsDir, 'new', 'd3') }]] as const) {
        attempts++;
        const r = await s.client.create(name, opts);
        const dir = opts ? opts.path : path.join(cfg.dataRoot, name);
        if (inv.check(isErr(r), () => `Create ${name} on a full data root: ${r.text}`)) await failedCleanly(inv, s, name, dir, r.json.Err, /space|ENOSPC/i);
      }
      execFileSync('mount', ['-o', 'remount,ro', fsDir]);
      attempts++;
      const r = await s.client.create('d4', null);
      if (inv.check(isErr(r), () => `Create d4 on a read-only data root: ${r.text}`)) {
        await failedCleanly(inv, s, 'd4', path.join(cfg.dataRoot, 'd4'), r.json.Err, /read-only|EROFS/i);
      }
      await stillAnswering(inv, s, ['d1'], 'data root full/read-only');
      execFileSync('mount', ['-o', 'remount,rw', fsDir]);
      await s.kill();
      const rows = readStoreCopy(cfg.stateDir).volumes.map((v) => `${v.name}:${v.state}`);
      inv.check(JSON.stringify(rows) === JSON.stringify(['d1:ready']), () => `store rows after failed Creates: ${rows}`);
    } finally {
      await s.kill();
    }
  }), 60_000);

test('slow and failing labelling: other volumes keep answering, a failed Create leaves nothing', () =>
  checked(async () => {
    // Slow: relabelling (z) an existing tree of many files, one lsetxattr each. Failing: a directory
    // on ramfs, which refuses security.* xattrs (EOPNOTSUPP), as file systems without xattrs do.
    const big = sb.dir('labels', 'big');
    for (let d = 0; d < 40; d++) {
      const sub = path.join(big, `d${d}`);
      fs.mkdirSync(sub);
      for (let f = 0; f < 500; f++) fs.writeFileSync(path.join(sub, `f${f}`), '');
    }
    const ram = sb.dir('labels', 'ram');
    execFileSync('mount', ['-t', 'ramfs', '-o', 'mode=0755', 'ramfs', ram]);
    const cfg = config('slow', { selinux: 'on', allowPaths: [sb.path('labels')] });
    const s = await Serve.start(cfg);
    try {
      await s.client.ok('/VolumeDriver.Create', { Name: 'fast', Opts: null });
      const t0 = Date.now();
      let slowDone = 0;
      const slow = s.client.create('slow', { path: big, z: '' }).finally(() => (slowDone = Date.now()));
      const failDir = path.join(ram, 'new', 'will-fail');
      const failing = s.client.create('will-fail', { path: failDir, Z: '', uid: '1000', mode: '0700' });
      await new Promise((r) => setTimeout(r, 200));
      for (const call of [() => s.client.get('fast'), () => s.client.list(), () => s.client.mount('fast', 'x'), () => s.client.unmount('fast', 'x')]) {
        const t1 = Date.now();
        const r = await call();
        inv.check(isOk(r) && Date.now() - t1 < 1500, () => `a call on another volume waited ${Date.now() - t1} ms behind slow labelling: ${r.text}`);
      }
      inv.check(slowDone === 0, 'the slow Create finished before the other calls were made (test assumption: relabelling was not slow)');
      attempts += 2;
      const sr = await slow;
      inv.check(isOk(sr), () => `slow Create failed: ${sr.text}`);
      if (process.env.RELIABILITY_DEBUG) console.log({ slowMs: slowDone - t0 });
      const f = await failing;
      if (inv.check(isErr(f), () => `Create will-fail: ${f.text}`)) {
        await failedCleanly(inv, s, 'will-fail', failDir, f.json.Err, /does not support it \(EOPNOTSUPP\)/);
        inv.check(!fs.existsSync(path.join(ram, 'new')), 'Create will-fail failed but left the parent it made');
      }
      await stillAnswering(inv, s, ['fast', 'slow'], 'after labelling');
      // Nothing was made or lost in the relabelled tree, and the volume is usable.
      inv.check(fs.readdirSync(big).length === 40 && fs.readdirSync(path.join(big, 'd39')).length === 500, 'the relabelled tree changed');
      const m = await s.client.mount('slow', 'y');
      inv.check(isOk(m), () => `Mount of the relabelled volume: ${m.text}`);
    } finally {
      await s.kill();
    }
  }), 120_000);
