// Shared mount propagation, as on every systemd host: `/` is rshared, so hostvol's own bind mounts
// propagate into every namespace that is a slave of its own (services with PrivateTmp and the like).
// Those copies are not containers using the volume: stale leases of rw and ro volumes must still be
// reclaimed, and the background sweeper must stop once nothing is left (and back off while a real
// user keeps a lease alive). hostvol runs in a mount namespace of the test's own, whose `/` the test
// makes rshared, so the host's mounts are never touched.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from './lib/client';
import { Invariants, recordFigures } from './lib/figures';
import { Sandbox } from './lib/sandbox';
import { requireBuild, serveArgs, type ServeConfig } from './lib/serve';

jest.setTimeout(120_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const inv = new Invariants();
const started = Date.now();
let sb: Sandbox;
let cfg: ServeConfig;
let world: ChildProcess;
let client: Client;
const pids: Record<string, number> = {};

/** Mount points of a process's mount namespace. */
const mountsOf = (pid: number): string[] =>
  fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')[4]);

/** The sweeper's passes so far, from hostvol's debug log: how many volumes were left, and the next delay. */
const passes = (): { left: number; nextMs: number | null }[] =>
  fs.readFileSync(cfg.logFile, 'utf8').split('\n').filter((l) => l.includes('"stale mount sweep pass"')).map((l) => JSON.parse(l));

beforeAll(async () => {
  requireBuild();
  sb = new Sandbox('propagation');
  cfg = {
    socket: sb.path('run', 'hostvol.sock'),
    dataRoot: sb.dir('data'),
    stateDir: sb.dir('state'),
    bootIdFile: sb.bootId(),
    logFile: sb.path('hostvol.log'),
    // Sweeper passes from 300 ms on instead of 5 s, so the backoff shows within seconds.
    extraArgs: ['--log-level', 'debug', '--stale-sweep-ms', '300'],
  };
  // hostvol's in-use check only trusts what it sees when dockerd is among the processes it can see.
  fs.copyFileSync('/bin/sleep', sb.path('dockerd'));
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = [
    'set -e',
    'mount --make-rshared /',
    `${q(sb.path('dockerd'))} 600 & echo "dockerd $!"`,
    // A slave namespace, as systemd makes for a service: it receives every mount made here later.
    `unshare --mount --propagation unchanged sh -c 'mount --make-rslave / && exec sleep 600' & echo "slave $!"`,
    `exec ${[process.execPath, ...serveArgs(cfg)].map(q).join(' ')} >> ${q(cfg.logFile)} 2>&1`,
  ].join('\n');
  world = spawn('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  world.stdout!.on('data', (d: Buffer) => {
    for (const line of d.toString().trim().split('\n')) pids[line.split(' ')[0]] = Number(line.split(' ')[1]);
  });
  client = new Client(cfg.socket);
  for (let i = 0; ; i++) {
    if (fs.existsSync(cfg.socket) && (await client.post('/VolumeDriver.List', {}).then((r) => !('Err' in (r.json ?? {})), () => false))) break;
    if (i > 400) throw new Error(`hostvol did not start:\n${fs.readFileSync(cfg.logFile, 'utf8')}`);
    await sleep(50);
  }
});

afterAll(async () => {
  recordFigures('propagation', {
    title: '10. shared propagation',
    durationMs: Date.now() - started,
    checks: inv.checks,
    violations: inv.violations.length,
    notes: '`/` rshared with a slave namespace holding copies of every bind: stale rw and ro leases reclaimed, a lease held by a container-like namespace kept, sweeper backs off and stops',
  });
  await client?.close().catch(() => undefined);
  for (const pid of [pids.dockerd, pids.slave, pids.holder]) if (pid) process.kill(pid, 'SIGKILL');
  world?.kill('SIGKILL');
  sb?.cleanup();
});

test('stale rw and ro leases are reclaimed although a slave namespace holds copies of their binds; a real user keeps its lease; the sweeper backs off, then stops', async () => {
  await client.ok('/Plugin.Activate');
  for (const [name, Opts] of [['prw', {}], ['pro', { ro: '' }], ['pheld', {}]] as const) {
    await client.ok('/VolumeDriver.Create', { Name: name, Opts });
    await client.ok('/VolumeDriver.Mount', { Name: name, ID: `id-${name}` });
  }
  // The copies really are in the slave namespace, at the same place: what made the old check say "in use".
  const slaveMounts = mountsOf(pids.slave);
  for (const name of ['prw', 'pro']) {
    inv.check(slaveMounts.includes(path.join(cfg.stateDir, 'mounts', name)), `no propagated copy of ${name}'s bind in the slave namespace (test assumption)`);
  }
  // A container-like user of pheld: its own namespace, the volume bound at its own path.
  const holder = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c',
    `mkdir -p /tmp/holder-$$ && mount --bind ${path.join(cfg.dataRoot, 'pheld')} /tmp/holder-$$ && echo ready && exec sleep 600`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => holder.stdout!.once('data', r));
  pids.holder = holder.pid!;

  // A new dockerd: every lease is now from before its Activate, so each may have lost its Unmount.
  await client.ok('/Plugin.Activate');
  const mounts = async (name: string) => (await client.ok('/VolumeDriver.Get', { Name: name })).Volume.Status.mounts as number;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && ((await mounts('prw')) > 0 || (await mounts('pro')) > 0)) await sleep(250);
  inv.check((await mounts('prw')) === 0, 'the stale lease of the rw volume was not reclaimed');
  inv.check((await mounts('pro')) === 0, 'the stale lease of the ro volume was not reclaimed');
  inv.check((await mounts('pheld')) === 1, 'the lease of the volume a container-like namespace holds was dropped');
  // Their binds went with the leases, in hostvol's namespace and so in the slave's.
  for (const name of ['prw', 'pro']) {
    inv.check(!mountsOf(pids.slave).includes(path.join(cfg.stateDir, 'mounts', name)), `${name}'s bind is still mounted after its lease was dropped`);
  }

  // While pheld's user stays, the passes go on, each further apart.
  while (Date.now() < deadline + 30_000 && passes().length < 3) await sleep(250);
  const delays = passes().map((p) => p.nextMs);
  inv.check(delays.length >= 3 && delays[1]! > delays[0]! && delays[2]! > delays[1]!, `the sweeper did not back off: ${JSON.stringify(delays)}`);

  // The user goes away: the next pass reclaims it and no further pass is scheduled.
  process.kill(pids.holder, 'SIGKILL');
  delete pids.holder;
  const last = passes().at(-1)!.nextMs!;
  const until = Date.now() + last + 10_000;
  while (Date.now() < until && (await mounts('pheld')) > 0) await sleep(250);
  inv.check((await mounts('pheld')) === 0, 'the lease was not reclaimed after its user went away');
  const count = passes().length;
  inv.check(passes().at(-1)!.left === 0 && passes().at(-1)!.nextMs === null, `the last pass scheduled another: ${JSON.stringify(passes().at(-1))}`);
  await sleep(3_000);
  inv.check(passes().length === count, 'the sweeper ran again with nothing left to reclaim');
  // And the volumes are removable, as dockerd would now ask.
  for (const name of ['prw', 'pro', 'pheld']) inv.check(!('Err' in (await client.ok('/VolumeDriver.Remove', { Name: name }))), `${name} could not be removed`);
  inv.assertNone();
});
