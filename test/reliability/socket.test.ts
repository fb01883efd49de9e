// Issue 5, group 5: the socket. Mode 0660 owned by root from the first instant; a second `hostvol
// serve` on the same socket (or the same state directory) refuses to start and leaves the first
// untouched; a stale socket left by a SIGKILLed process is replaced; a non-socket file is never removed.
import * as fs from 'node:fs';
import * as http from 'node:http';
import { closeServer, listenUnix } from '../../src/plugin/listen';
import { isOk } from './lib/client';
import { Invariants, pick, recordFigures } from './lib/figures';
import { Sandbox } from './lib/sandbox';
import { Serve, requireBuild, serveExpectingExit, sleep, type ServeConfig } from './lib/serve';

let sb: Sandbox;
let cfg: ServeConfig;
const inv = new Invariants();
const started = Date.now();
let kills = 0;

beforeAll(() => {
  requireBuild();
  sb = new Sandbox('socket');
  cfg = {
    socket: sb.path('run', 'plugins', 'hostvol.sock'),
    dataRoot: sb.path('data'),
    stateDir: sb.path('state'),
    bootIdFile: sb.bootId(),
    logFile: sb.path('hostvol.log'),
  };
});

afterAll(() => {
  recordFigures('socket', {
    title: '5. socket',
    durationMs: Date.now() - started,
    checks: inv.checks,
    violations: inv.violations.length,
    // Not `kills`: after these only the socket is checked, not every invariant, so they are not "kills survived".
    notes: `mode and owner, second instance refused (same socket, same state dir), stale socket replaced, non-socket file kept; ${kills} SIGKILLs after which only the socket was checked`,
  });
  sb?.cleanup();
});

/** Runs a test body and fails it with every violation it added. */
async function checked(fn: () => Promise<void>): Promise<void> {
  const first = inv.violations.length;
  await fn();
  const mine = inv.violations.slice(first);
  if (mine.length) throw new Error(`${mine.length} invariant violation(s):\n${mine.join('\n')}`);
}

test('the socket is mode 0660 and owned by root from the moment it appears', () =>
  checked(async () => {
    const s = Serve.spawn(cfg);
    try {
      // Poll as fast as possible: the first sight of the socket must already be 0660, not a wider mode before chmod.
      const seen = new Set<string>();
      const show = (st: fs.Stats) => `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.isSocket()}`;
      const deadline = Date.now() + 15_000;
      let st: fs.Stats | undefined;
      while (!(st = fs.lstatSync(cfg.socket, { throwIfNoEntry: false })) && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      inv.check(st !== undefined, 'the socket never appeared');
      if (st) seen.add(show(st));
      await s.waitReady();
      seen.add(show(fs.statSync(cfg.socket)));
      inv.check([...seen].every((m) => m === '660 0:0 true'), () => `socket modes seen: ${[...seen].join(', ')}`);
      const dir = fs.statSync(sb.path('run', 'plugins'));
      inv.check((dir.mode & 0o777) === 0o755 && dir.uid === 0, `socket directory mode ${(dir.mode & 0o777).toString(8)}`);
    } finally {
      await s.kill('SIGTERM');
    }
  }), 60_000);

test('a second hostvol serve on the same socket refuses to start and leaves the first untouched', () =>
  checked(async () => {
    const first = await Serve.start(cfg);
    try {
      await first.client.ok('/VolumeDriver.Create', { Name: 'kept', Opts: null });
      const inode = fs.statSync(cfg.socket).ino;
      // Same socket, other state: refused at the socket before any state is touched.
      const other = { ...cfg, stateDir: sb.path('state-b'), dataRoot: sb.path('data-b'), logFile: sb.path('b.log') };
      const second = await serveExpectingExit(other);
      inv.check(!second.timedOut && second.code !== 0, () => `second serve exit ${second.code} (timed out: ${second.timedOut})`);
      inv.check(/already serving/.test(second.output), () => `second serve output: ${second.output.slice(0, 300)}`);
      inv.check(!fs.existsSync(sb.path('state-b', 'hostvol.db')), 'second serve created a store before refusing');
      // Same state directory, other socket: refused by the store lock; its own socket is cleaned up.
      const third = await serveExpectingExit({ ...cfg, socket: sb.path('run', 'other.sock'), logFile: sb.path('c.log') });
      inv.check(third.code !== 0 && /in use by another hostvol/.test(third.output), () => `same state dir: exit ${third.code}: ${third.output.slice(0, 300)}`);
      inv.check(!fs.existsSync(sb.path('run', 'other.sock')), 'refused serve left its socket behind');

      inv.check(first.alive(), 'the first hostvol died');
      inv.check(fs.statSync(cfg.socket).ino === inode, 'the first socket file was replaced');
      inv.check(isOk(await first.client.get('kept')), 'the first hostvol no longer answers Get');
      // And it can still write its store (the lock was not stolen).
      inv.check(isOk(await first.client.create('after-second', null)), 'the first hostvol cannot write after the refusals');
      inv.check(isOk(await first.client.mount('after-second', 'm')), 'the first hostvol cannot record a lease after the refusals');
      inv.check(isOk(await first.client.unmount('after-second', 'm')), 'Unmount after the refusals');
    } finally {
      await first.kill('SIGTERM');
    }
  }), 60_000);

test('a stale socket from a SIGKILLed process is replaced; a file that is not a socket is kept', () =>
  checked(async () => {
    for (let i = 0; i < 5; i++) {
      const s = await Serve.start(cfg);
      await s.client.ok('/VolumeDriver.Mount', { Name: 'kept', ID: `m${i}` });
      await s.kill('SIGKILL');
      kills++;
      inv.check(fs.lstatSync(cfg.socket, { throwIfNoEntry: false })?.isSocket() === true, 'SIGKILL did not leave the socket file (test assumption)');
    }
    const s = await Serve.start(cfg);
    try {
      const st = fs.statSync(cfg.socket);
      inv.check((st.mode & 0o777) === 0o660, `replaced socket mode ${(st.mode & 0o777).toString(8)}`);
      const g = await s.client.ok('/VolumeDriver.Get', { Name: 'kept' });
      inv.check(g.Volume.Status.mounts === 5, `leases across stale-socket restarts: ${g.Volume.Status.mounts}`);
    } finally {
      await s.kill('SIGTERM');
    }
    // After a clean stop the socket is gone.
    inv.check(!fs.existsSync(cfg.socket), 'socket left after SIGTERM');

    fs.writeFileSync(cfg.socket, 'not a socket\n');
    const r = await serveExpectingExit(cfg);
    inv.check(r.code !== 0 && /not a socket/.test(r.output), () => `regular file at the socket path: exit ${r.code}: ${r.output.slice(0, 300)}`);
    inv.check(fs.readFileSync(cfg.socket, 'utf8') === 'not a socket\n', 'the regular file at the socket path was changed');
    fs.unlinkSync(cfg.socket);
    await sleep(10);
  }), 60_000);

test('several hostvol serve started at once over a stale socket: exactly one serves, the others refuse', () =>
  checked(async () => {
    const rounds = pick(4, 40);
    for (let i = 0; i < rounds; i++) {
      // A stale socket, as a SIGKILLed process leaves it.
      const dead = await Serve.start(cfg);
      await dead.kill('SIGKILL');
      kills++;
      // Different state directories, so only the socket decides (the store lock would hide the race).
      const all = ['x', 'y', 'z'].map((t) => {
        const logFile = sb.path(`race-${t}-${i}.log`);
        return { logFile, s: Serve.spawn({ ...cfg, stateDir: sb.path(`race-${t}`), dataRoot: sb.path(`race-data-${t}`), logFile }) };
      });
      // Settled: each process has either exited (refused) or logged that it is ready.
      const ready = (x: (typeof all)[number]) => x.s.alive() && /hostvol ready/.test(fs.readFileSync(x.logFile, 'utf8'));
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && !all.every((x) => !x.s.alive() || ready(x))) await sleep(20);
      const serving = all.filter(ready);
      inv.check(serving.length === 1, () => `round ${i}: ${serving.length} of ${all.length} processes are serving (only one can own the socket)`);
      for (const x of all.filter((x) => !x.s.alive())) {
        const log = fs.readFileSync(x.logFile, 'utf8');
        inv.check(/already serving/.test(log), () => `round ${i}: a refused start does not say why: ${log.slice(0, 300)}`);
      }
      inv.check(isOk(await all[0].s.client.list().catch(() => ({ status: 0 }) as never)), `round ${i}: the socket does not answer`);
      for (const x of all) await x.s.kill();
    }
  }), 180_000);

test('listenUnix started concurrently over a stale socket (deterministic race): exactly one listens', () =>
  checked(async () => {
    // In one process the probes of all starts interleave for sure: each sees the socket stale, and
    // without a claim each would unlink the socket the previous one just bound.
    const dead = await Serve.start(cfg);
    await dead.kill('SIGKILL');
    kills++;
    const servers = [0, 1, 2, 3].map((i) => http.createServer((_req, res) => res.end(`{"server":${i}}`)));
    const results = await Promise.allSettled(servers.map((srv) => listenUnix(srv, cfg.socket)));
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    inv.check(won.length === 1, () => `${won.length} of 4 concurrent starts are listening`);
    for (const r of results) {
      if (r.status === 'rejected') inv.check(/already serving/.test(String(r.reason)), () => `refusal: ${r.reason}`);
    }
    const reply = await new Promise<string>((resolve) => {
      http.get({ socketPath: cfg.socket, path: '/', agent: false }, (res) => {
        let b = '';
        res.on('data', (c) => (b += c)).on('end', () => resolve(b));
      }).on('error', (e) => resolve(e.message));
    });
    inv.check(won.length === 1 && reply === `{"server":${won[0]}}`, () => `the socket is answered by ${reply}, winners ${won}`);
    for (const srv of servers) await closeServer(srv);
    // Once the winner is closed, its claim is released and a new start succeeds.
    const again = http.createServer((_req, res) => res.end('{}'));
    await listenUnix(again, cfg.socket).then(
      () => inv.check(true, ''),
      (e) => inv.check(false, `a start after a clean close is refused: ${e}`),
    );
    await closeServer(again);
  }), 60_000);
