// Issue 5, group 7: power cuts. hostvol's state directory, data root and allowed root live on lazyfs
// (lib/powercut/lazyfs.py: writes stay in memory until fsync/fsyncdir; a cut keeps only what was
// synced). A few clients run a random mix of Create (owner, mode, ro, nested -o path=, onremove),
// Remove, Mount and Unmount (the same ID twice, as docker cp does) and write small files into the
// volumes; at a random moment the power goes: hostvol is SIGKILLed and the layer cut at once. After
// a restart every acknowledged reply must hold (lib/powercut-check.ts); a request in flight may have
// landed or not, but as a whole. Sometimes the power goes again during recovery, or the host "reboots"
// (new boot id: every lease must go). Every phase of a round runs under a watchdog
// (lib/powercut-watchdog.ts): a round that stops making progress fails with its number, phase, seed,
// the logs and the last requests, and leaves no process or FUSE mount behind.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Invariants, LONG, Rng, pick, recordFigures, seed } from './lib/figures';
import { PowerCut, powercutToolsMissing, type LayerStats } from './lib/powercut';
import { LEASES, checkDurableStore, checkRecovered, type Settled } from './lib/powercut-check';
import { PowerModel, sortedJson } from './lib/powercut-model';
import { PhaseTimeout, Watchdog } from './lib/powercut-watchdog';
import { Journal, runClient, type Op, type Tally } from './lib/powercut-workload';
import { Sandbox } from './lib/sandbox';
import { Serve, killAllServes, requireBuild, sleep, type ServeConfig } from './lib/serve';
import { readStoreCopy, type StoreCopy } from './lib/store';

const CUTS = pick(20, 200);
const SEED = seed();
const CLIENTS = 4;
const NAMES_PER_CLIENT = 4;
/** Phase deadlines: each is many times what the phase takes on a loaded 2-core host. */
const START_MS = 45_000;
const CUT_MS = 60_000;
const CHECK_MS = 90_000;
/** Where a failed run's evidence goes (the sandbox is removed in afterAll). */
const KEPT_LOG = path.join(os.tmpdir(), `hostvol-powercut-${SEED}.log`);
const KEPT_FAILURE = path.join(os.tmpdir(), `hostvol-powercut-${SEED}.failure.txt`);
const missing = powercutToolsMissing();
const testCut = missing ? test.skip : test;
if (missing) console.warn(`power-cut tests skipped: ${missing}`);

let sb: Sandbox;
let pc: PowerCut;
let cfg: ServeConfig;
let model: PowerModel;
let serve: Serve | undefined;
const journal = new Journal();
/** The round under way (1-based), for every failure message. */
let round = 0;

/** Everything needed to replay a failure and to see where it stood. */
function context(): string {
  return [
    `seed ${SEED} (replay: RELIABILITY_SEED=${SEED}${LONG ? ' RELIABILITY_LONG=1' : ''} node_modules/.bin/jest test/reliability/powercut.test.ts --selectProjects reliability)`,
    `hostvol's log kept at ${KEPT_LOG}; this message at ${KEPT_FAILURE}`,
    `hostvol: ${serve ? `pid ${serve.pid}, ${serve.alive() ? 'running' : 'exited'}` : 'not started'}`,
    pc ? pc.diagnose() : 'lazyfs: not mounted',
    `last requests and notes (UTC):\n${journal.format()}`,
  ].join('\n');
}

/** Keeps the evidence of a failed run outside the sandbox, message included (jest's output may be lost). */
function keepEvidence(message: string): void {
  try {
    if (cfg && fs.existsSync(cfg.logFile)) fs.copyFileSync(cfg.logFile, KEPT_LOG);
    fs.writeFileSync(KEPT_FAILURE, `${message}\n`);
  } catch {
    // the evidence is a courtesy: the failure itself is thrown anyway
  }
}

const watchdog = new Watchdog(
  () => [serve?.pid, pc?.pid].filter((p): p is number => p !== undefined),
  (phase, ms) => {
    const message = `power-cut round ${round} of ${CUTS}, phase "${phase}": no progress within ${ms} ms\n${context()}`;
    keepEvidence(message);
    return message;
  },
  async () => {
    killAllServes();
    try {
      pc?.abort();
    } catch (err) {
      console.error(`power-cut watchdog: ${(err as Error).message}`); // the phase's failure matters more
    }
  },
);
const phase = <T>(name: string, ms: number, fn: () => T | Promise<T>) => watchdog.phase(name, ms, fn);

beforeAll(async () => {
  if (missing) return;
  requireBuild();
  sb = new Sandbox('powercut');
  const backing = sb.dir('backing');
  for (const d of ['data', 'state', 'allow']) fs.mkdirSync(path.join(backing, d));
  const disk = sb.dir('disk');
  pc = await phase('mount lazyfs', START_MS, () => PowerCut.mount(backing, disk));
  cfg = {
    socket: sb.path('run', 'hostvol.sock'), // outside the layer: a socket is no data
    dataRoot: path.join(disk, 'data'),
    stateDir: path.join(disk, 'state'),
    allowPaths: [path.join(disk, 'allow')],
    bootIdFile: sb.bootId(),
    logFile: sb.path('hostvol.log'),
  };
  model = new PowerModel({ data: cfg.dataRoot, allow: path.join(disk, 'allow'), mounts: path.join(cfg.stateDir, 'mounts') });
}, START_MS + 15_000);

afterAll(async () => {
  killAllServes();
  await pc?.unmount(); // lazily, so hostvol's binds on it cannot hold it
  sb?.cleanup();
  await watchdog.close();
}, 60_000);

/** hostvol's store as a copy; a store that cannot be read is a violation (the cut took what it needed). */
function storeCopy(inv: Invariants, at: string): StoreCopy | undefined {
  try {
    return readStoreCopy(cfg.stateDir);
  } catch (err) {
    inv.check(false, `${at}: the store in ${cfg.stateDir} cannot be read: ${(err as Error).message}`);
    return undefined;
  }
}

/**
 * Whether hostvol process `pid` ran its stale-lease sweep, which 5 s after start-up drops leases no
 * container holds (by design: dockerd's Unmount may have been lost while hostvol was down). Rounds
 * are far shorter, but a loaded machine can stretch one: its lease checks are then void, and the
 * model takes the leases from the store.
 */
function swept(pid: number): boolean {
  return fs.readFileSync(cfg.logFile, 'utf8').split('\n').some((l) => l.includes(`"pid":${pid},`) && l.includes('no container has the volume mounted'));
}

/** Drops this round's lease violations and takes the leases from the store (see `swept`). */
function voidLeaseChecks(inv: Invariants, model: PowerModel, from: number, copy: StoreCopy): void {
  const kept = inv.violations.filter((v, i) => i < from || !v.includes(LEASES));
  inv.violations.splice(0, inv.violations.length, ...kept);
  model.leases.clear();
  for (const l of copy.leases) if (model.vols.has(l.volume)) model.leases.setCount(l.volume, l.id, l.count);
}

testCut(`power cuts: ${CUTS} cuts at random moments of mixed operations (seed ${SEED})`, async () => {
  const started = Date.now();
  const rng = new Rng(SEED);
  const inv = new Invariants();
  const settled: Settled = { landed: 0, notLanded: 0 };
  const tally: Tally = { requests: 0, filesSynced: 0, filesUnsynced: 0 };
  const layer: Omit<LayerStats, 'cuts'> = { fsyncs: 0, fsyncdirs: 0, discardedWriteBytes: 0 };
  const names = Array.from({ length: CLIENTS }, (_, c) => Array.from({ length: NAMES_PER_CLIENT }, (_, n) => `c${c}v${n}`));
  let cuts = 0;
  let checked = 0;
  let inRecovery = 0;
  let reboots = 0;
  let sweptRounds = 0;

  /** The power goes: the process dies with it, then the layer forgets what was not synced. */
  const powerCut = async (victim: Serve) => {
    victim.child.kill('SIGKILL');
    const s = await pc.cut();
    await victim.kill();
    layer.fsyncs += s.fsyncs;
    layer.fsyncdirs += s.fsyncdirs;
    layer.discardedWriteBytes += s.discardedWriteBytes;
    cuts++;
    journal.note(`-- power cut ${cuts}`);
  };
  const start = async () => {
    serve = Serve.spawn(cfg);
    await serve.waitReady(START_MS - 5_000);
    return serve;
  };

  let live = await phase('start hostvol', START_MS, start);
  let failure: unknown;
  try {
    while (cuts < CUTS) {
      round = cuts + 1;
      let stop = false;
      const work = Promise.all(names.map((own) => runClient(live.client, own, model, rng, inv, tally, () => stop, journal)));
      // Mostly well into the work, sometimes right at its start. Short enough that the stale-lease
      // sweep (5 s after start-up) never runs: it may drop leases no container holds, by design.
      await sleep(rng.chance(0.2) ? rng.int(60) : 60 + rng.int(1500));
      stop = true;
      await phase('power cut', CUT_MS, () => powerCut(live));
      const inflight = (await phase('in-flight requests settle', CUT_MS, () => work)).filter((o): o is Op => o !== undefined);
      const at = `cut ${cuts}`;

      const durable = await phase('read the durable store', CHECK_MS, () => storeCopy(inv, at));
      if (!durable) break;
      let from = inv.violations.length;
      checkDurableStore(inv, model, durable, inflight, settled, at);
      if (swept(live.pid)) {
        voidLeaseChecks(inv, model, from, durable);
        sweptRounds++;
      }
      if (rng.chance(0.05)) {
        // A reboot: no container can still hold a mount; recovery must drop every lease.
        fs.writeFileSync(cfg.bootIdFile, `${crypto.randomUUID()}\n`);
        model.leases.clear();
        reboots++;
        journal.note('-- reboot (new boot id)');
      }
      if (cuts < CUTS && rng.chance(0.1)) {
        // The power goes again while hostvol opens its store or recovers.
        await phase('power cut during recovery', CUT_MS, async () => {
          const s = (serve = Serve.spawn(cfg));
          await sleep(rng.int(400));
          await powerCut(s);
        });
        inRecovery++;
      }
      live = await phase('restart hostvol', START_MS, start);
      from = inv.violations.length;
      const after = await phase('check recovery', CHECK_MS, async () => {
        await checkRecovered(inv, model, live.client, inflight, settled, at);
        return storeCopy(inv, `${at}, after recovery`);
      });
      if (!after) break;
      const states = after.volumes.map((r) => `${r.name}:${r.state}`).sort();
      const ready = [...model.vols.keys()].map((n) => `${n}:ready`).sort();
      inv.check(sortedJson(states) === sortedJson(ready), () => `${at}: records after recovery ${states} / acknowledged ${ready}`);
      const leases = after.leases.map((l) => `${l.volume}/${l.id}=${l.count}`).sort();
      inv.check(sortedJson(leases) === sortedJson(model.leaseList()), () => `${at}: ${LEASES} leases after recovery ${leases} / acknowledged ${model.leaseList()}`);
      if (swept(live.pid)) {
        voidLeaseChecks(inv, model, from, after);
        sweptRounds++;
      }
      if (inv.violations.length) break; // the first broken round is the one worth reading
      checked = cuts; // "kills survived": every invariant checked and held
    }
  } catch (err) {
    failure = err;
  } finally {
    await phase('stop hostvol', CUT_MS, () => live.kill()).catch((err: unknown) => (failure ??= err));
  }
  if (failure) {
    // A watchdog failure carries the context already; anything else gets it here.
    if (!(failure instanceof PhaseTimeout)) keepEvidence(`power-cut round ${round} of ${CUTS} failed: ${(failure as Error).stack}\n${context()}`);
    throw failure instanceof PhaseTimeout ? failure : new Error(`power-cut round ${round} of ${CUTS} failed: ${(failure as Error).message}\n${context()}`, { cause: failure });
  }

  const layerNote = `layer: ${layer.fsyncs} fsyncs, ${layer.fsyncdirs} fsyncdirs, ${layer.discardedWriteBytes} unsynced bytes discarded`;
  recordFigures('powercut', {
    title: '7. power cuts',
    seed: SEED,
    durationMs: Date.now() - started,
    checks: inv.checks,
    violations: inv.violations.length,
    kills: checked,
    clients: CLIENTS,
    notes:
      `${cuts} power cuts on lazyfs (${inRecovery} during start-up/recovery, ${reboots} with a new boot id), ${tally.requests} requests, ` +
      `in-flight requests settled: ${settled.landed} landed, ${settled.notLanded} did not; ` +
      `${tally.filesSynced} synced and ${tally.filesUnsynced} unsynced test files; ${layerNote}` +
      (sweptRounds ? `; lease checks void in ${sweptRounds} rounds slow enough for the stale-lease sweep` : ''),
  });
  if (inv.violations.length) {
    const message = `${inv.violations.length} invariant violation(s), the first in round ${round} of ${CUTS}:\n${inv.violations.slice(0, 50).join('\n')}\n${context()}`;
    keepEvidence(message);
    throw new Error(message);
  }
}, LONG ? 3_600_000 : 240_000); // backstops: the watchdog fails a stuck phase long before
