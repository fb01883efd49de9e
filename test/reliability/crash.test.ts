// Issue 5, group 1: crash consistency. One client serves a random mix of Create / Mount / Unmount /
// Remove (ro, path, onremove=delete, existing and new directories) and records every acknowledged
// reply in a model; `hostvol serve` is SIGKILLed at random moments (also during start-up, sometimes
// with a new boot id) and restarted. After every restart the store, the replies, the directories and
// the mount table must match the model; only the one request in flight may land either way, and the
// store as the kill left it decides which: a 'creating' record is always undone, a 'removing' one
// always finished, a 'ready' one is a whole volume. Every volume with leases has one bind at
// <state>/mounts/<name> (read-only for ro volumes), nothing else does; no trash directory survives.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TransportError, isOk } from './lib/client';
import { CrashModel, FLAVORS, type CrashDirs, type Op } from './lib/crash-model';
import { verifyAfterRestart } from './lib/crash-verify';
import { Invariants, LONG, Rng, pick, recordFigures, seed } from './lib/figures';
import { Sandbox, diffSnapshots, mountTable, plantDecoys, snapshot } from './lib/sandbox';
import { Serve, requireBuild, sleep, type ServeConfig } from './lib/serve';
import { readStoreCopy } from './lib/store';

const KILLS = pick(20, 200);
const SEED = seed();
const NAMES = ['v0', 'v1', 'v2', 'v3', 'v4', 'v5'];
const IDS = ['a', 'b', 'c0ffee'.padEnd(64, '0')];

let sb: Sandbox;
let cfg: ServeConfig;
let dirs: CrashDirs;

/** A sandbox for one hostvol: its data root, the allowed roots (allow/pre made by the test), decoys outside. */
function crashSandbox(tag: string): { sb: Sandbox; dirs: CrashDirs; cfg: ServeConfig } {
  const sb = new Sandbox(tag);
  const dirs = {
    data: sb.dir('data'),
    allowNew: sb.path('allow', 'new'),
    allowPre: sb.dir('allow', 'pre'),
    mounts: sb.path('state', 'mounts'),
    outside: sb.dir('outside'),
  };
  plantDecoys(dirs.outside);
  const cfg = {
    socket: sb.path('run', 'hostvol.sock'),
    dataRoot: dirs.data,
    stateDir: sb.path('state'),
    allowPaths: [sb.path('allow')],
    bootIdFile: sb.bootId(),
    logFile: sb.path('hostvol.log'),
  };
  return { sb, dirs, cfg };
}

beforeAll(() => {
  requireBuild();
  ({ sb, dirs, cfg } = crashSandbox('crash'));
});

afterAll(() => sb?.cleanup());

test(`the check after a restart walks the test's own allow/pre, empty or not, and flags what hostvol left in it`, async () => {
  const own = crashSandbox('crash-check');
  const inv = new Invariants();
  const model = new CrashModel(own.dirs, inv);
  const serve = await Serve.start(own.cfg);
  try {
    // A pre-delete volume removed: its directory goes, and allow/pre is left empty.
    model.makePre('w');
    model.expectReply(await serve.client.create('w', model.flavorOpts('w', 'pre-delete')), true, 'Create w');
    model.created('w', 'pre-delete', true);
    model.expectReply(await serve.client.remove('w'), true, 'Remove w');
    model.removed('w');
    const check = () => verifyAfterRestart(model, serve, undefined, undefined, 'check', own.sb.root, own.sb.path('allow'));
    await check();
    expect(inv.violations).toEqual([]);
    fs.mkdirSync(path.join(own.dirs.allowPre, 'stray'));
    await check();
    expect(inv.violations).toEqual([`check: directory ${path.join(own.dirs.allowPre, 'stray')} exists without a volume record`]);
  } finally {
    await serve.kill();
    own.sb.cleanup();
  }
});

test(`crash consistency: ${KILLS} SIGKILLs at random moments (seed ${SEED})`, async () => {
  const started = Date.now();
  const rng = new Rng(SEED);
  const inv = new Invariants();
  const model = new CrashModel(dirs, inv);
  const { vols, leases } = model;
  let ops = 0;
  let reboots = 0;
  let startupKills = 0;

  for (const n of NAMES) model.makePre(n);
  const outsideBefore = snapshot(dirs.outside);

  /** One random request; model updated only from the reply. Throws TransportError when the server died. */
  const step = async (serve: Serve, setInflight: (op: Op | undefined) => void) => {
    const c = serve.client;
    const name = rng.pick(NAMES);
    const v = vols.get(name);
    const roll = rng.next();
    ops++;
    if (roll < 0.3) {
      const flavor = v && rng.chance(0.7) ? v.flavor : rng.pick(FLAVORS);
      const existed = fs.existsSync(model.flavorPath(name, flavor));
      const made = firstMissing(model.flavorPath(name, flavor));
      setInflight({ kind: 'create', name, flavor, existed, made, isNew: !v });
      const r = await c.create(name, model.flavorOpts(name, flavor));
      setInflight(undefined);
      model.expectReply(r, !v || v.flavor === flavor, `Create ${name} ${flavor} (model: ${v?.flavor ?? 'absent'})`);
      if (!v && isOk(r)) model.created(name, flavor, existed, made);
    } else if (roll < 0.55) {
      const id = rng.pick(IDS);
      setInflight({ kind: 'mount', name, id });
      const r = await c.mount(name, id);
      setInflight(undefined);
      model.expectReply(r, !!v, `Mount ${name} ${id}`);
      if (v && isOk(r)) {
        // Every Mount answers hostvol's own bind of the directory, never the data directory itself.
        const want = path.join(dirs.mounts, name);
        inv.check(r.json.Mountpoint === want, () => `Mount ${name} returned ${r.json.Mountpoint}, expected ${want}`);
        model.leases.setCount(name, id, model.leases.count(name, id) + 1);
      }
    } else if (roll < 0.8) {
      const held = [...(leases.get(name)?.keys() ?? [])];
      const id = held.length && rng.chance(0.8) ? rng.pick(held) : rng.pick(IDS);
      setInflight({ kind: 'unmount', name, id });
      const r = await c.unmount(name, id);
      setInflight(undefined);
      model.expectReply(r, !!v, `Unmount ${name} ${id}`);
      if (v && isOk(r)) model.leases.setCount(name, id, model.leases.count(name, id) - 1);
    } else if (roll < 0.95) {
      setInflight({ kind: 'remove', name });
      const r = await c.remove(name);
      setInflight(undefined);
      // dockerd removes only volumes no container references, so leases left are lost Unmounts: with
      // no dockerd to be seen (and no container holding the directory) Remove drops them and succeeds.
      model.expectReply(r, !!v, `Remove ${name} (mounts in model: ${leases.get(name)?.size ?? 0})`);
      if (v && isOk(r)) {
        model.removed(name);
        const bound = mountTable().some((m) => m.target === path.join(dirs.mounts, name));
        inv.check(!bound, `Remove ${name} acknowledged while its bind mount is still there`);
        inv.check(fs.existsSync(v.path) === (v.onRemove === 'keep'), () => `Remove ${name} (onremove ${v.onRemove}): directory ${v.path} exists=${fs.existsSync(v.path)}`);
      }
    } else {
      const r = await c.list();
      inv.check(isOk(r), () => `List failed: ${r.text}`);
    }
  };

  let serve = await Serve.start(cfg);
  // RELIABILITY.md's "kills survived": a SIGKILL the test sent to a live process, after which hostvol
  // was started again and verify() checked every invariant. The kill of a start-up counts too: it is
  // followed by another restart and the same full verify (the kill before it also by the store check).
  // A process that had already exited was not killed, and one that died by itself is a violation.
  let kills = 0;
  try {
    while (kills < KILLS) {
      let inflight: Op | undefined;
      const killAfter = rng.int(rng.chance(0.3) ? 40 : 400);
      let killedByUs = false;
      const timer = setTimeout(() => {
        killedByUs = serve.alive();
        serve.child.kill('SIGKILL');
      }, killAfter);
      try {
        while (serve.alive()) await step(serve, (op) => (inflight = op));
      } catch (err) {
        if (!(err instanceof TransportError)) throw err;
        const exited = await Promise.race([serve.exited.then(() => true), sleep(5000).then(() => false)]);
        inv.check(exited, `a request failed while the server was running: ${err.message}`);
      }
      clearTimeout(timer);
      await serve.kill();
      const how = await serve.exited;
      inv.check(killedByUs && how.signal === 'SIGKILL', () => `hostvol exited by itself (code ${how.code}, signal ${how.signal}):\n${serve.logTail()}`);
      kills++;

      const mustExist = model.settleFromStore(readStoreCopy(cfg.stateDir), inflight);
      if (rng.chance(0.05)) {
        // A reboot: no container can still hold a mount; the leases must go and the binds with them.
        fs.writeFileSync(cfg.bootIdFile, `${crypto.randomUUID()}\n`);
        leases.clear();
        reboots++;
      }
      if (kills < KILLS && rng.chance(0.1)) {
        // Killed again while opening the store or recovering.
        const s = Serve.spawn(cfg);
        await sleep(rng.int(300));
        const alive = s.alive();
        await s.kill();
        if (inv.check(alive, () => `hostvol exited by itself during start-up:\n${s.logTail()}`)) {
          kills++;
          startupKills++;
        }
      }
      serve = await Serve.start(cfg);
      await verifyAfterRestart(model, serve, inflight, mustExist, `after restart ${kills}`, sb.root, sb.path('allow'));
      if (inv.violations.length) break; // the first broken round is the one worth reading
    }
  } finally {
    await serve.kill();
  }
  const outsideDiff = diffSnapshots(outsideBefore, snapshot(dirs.outside));
  inv.check(outsideDiff.length === 0, () => `outside the allowed paths: ${outsideDiff.join('; ')}`);

  recordFigures('crash', {
    title: '1. crash consistency',
    seed: SEED,
    durationMs: Date.now() - started,
    checks: inv.checks,
    violations: inv.violations.length,
    kills,
    notes: `${kills} SIGKILLs (${startupKills} during start-up/recovery, ${reboots} with a new boot id), ${ops} requests, ${model.landedEitherWay} in-flight requests that landed`,
  });
  inv.assertNone(`seed ${SEED}; log ${cfg.logFile}`);
}, LONG ? 1_800_000 : 180_000);

/** The first directory a `mkdir -p` of p would make (what Create records as made), or undefined. */
function firstMissing(p: string): string | undefined {
  let missing: string | undefined;
  for (let cur = p; !fs.existsSync(cur); cur = path.dirname(cur)) missing = cur;
  return missing;
}
