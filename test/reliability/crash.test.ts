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
import { TransportError, isErr, isOk, type Reply } from './lib/client';
import { Invariants, LONG, Rng, pick, recordFigures, seed } from './lib/figures';
import { Sandbox, diffSnapshots, inside, mountTable, plantDecoys, snapshot } from './lib/sandbox';
import { Serve, requireBuild, sleep, type ServeConfig } from './lib/serve';
import { readStoreCopy, type StoreCopy } from './lib/store';

const KILLS = pick(20, 200);
const SEED = seed();
const NAMES = ['v0', 'v1', 'v2', 'v3', 'v4', 'v5'];
const IDS = ['a', 'b', 'c0ffee'.padEnd(64, '0')];

type Flavor = 'plain' | 'ro' | 'delete' | 'new' | 'new-ro' | 'pre' | 'pre-delete';
const FLAVORS: Flavor[] = ['plain', 'ro', 'delete', 'new', 'new-ro', 'pre', 'pre-delete'];

interface MVol {
  flavor: Flavor;
  path: string;
  ro: boolean;
  /** Explicit, else `delete` only for a directory hostvol made in its data root (-o path= keeps). */
  onRemove: 'keep' | 'delete';
  /** The first directory Create had to make (what `mkdir -p` made), as the test saw it beforehand. */
  made?: string;
}

type Op =
  | { kind: 'create'; name: string; flavor: Flavor; existed: boolean; made?: string; isNew: boolean }
  | { kind: 'remove'; name: string; isNew?: undefined }
  | { kind: 'mount' | 'unmount'; name: string; id: string };

let sb: Sandbox;
let cfg: ServeConfig;
let dirs: { data: string; allowNew: string; allowPre: string; mounts: string; outside: string };

beforeAll(() => {
  requireBuild();
  sb = new Sandbox('crash');
  dirs = {
    data: sb.dir('data'),
    allowNew: sb.path('allow', 'new'),
    allowPre: sb.dir('allow', 'pre'),
    mounts: sb.path('state', 'mounts'),
    outside: sb.dir('outside'),
  };
  plantDecoys(dirs.outside);
  cfg = {
    socket: sb.path('run', 'hostvol.sock'),
    dataRoot: dirs.data,
    stateDir: sb.path('state'),
    allowPaths: [sb.path('allow')],
    bootIdFile: sb.bootId(),
    logFile: sb.path('hostvol.log'),
  };
});

afterAll(() => sb?.cleanup());

test(`crash consistency: ${KILLS} SIGKILLs at random moments (seed ${SEED})`, async () => {
  const started = Date.now();
  const rng = new Rng(SEED);
  const inv = new Invariants();
  const vols = new Map<string, MVol>();
  const leases = new Map<string, Map<string, number>>(); // volume -> id -> count
  /** Directories that may exist without a record: made by the test, or data kept by onremove=keep. */
  const foreign = new Set<string>();
  /**
   * Empty directories hostvol made for a removed volume while another volume still lived below them:
   * it removes only what it made for the volume at hand and only when empty, so these may stay.
   */
  const sharedMade = new Set<string>();
  let ops = 0;
  let landedEitherWay = 0;
  let reboots = 0;
  let startupKills = 0;

  for (const n of NAMES) makePre(n, foreign);
  const outsideBefore = snapshot(dirs.outside);

  const flavorPath = (name: string, f: Flavor) =>
    f.startsWith('new') ? path.join(dirs.allowNew, name) : f.startsWith('pre') ? path.join(dirs.allowPre, name) : path.join(dirs.data, name);
  const flavorOpts = (name: string, f: Flavor): Record<string, string> | null => {
    switch (f) {
      case 'plain': return null;
      case 'ro': return { ro: '' };
      case 'delete': return { onremove: 'delete' };
      case 'new': return { path: flavorPath(name, f) };
      case 'new-ro': return { mountpoint: flavorPath(name, f), o: 'ro' };
      case 'pre': return { path: flavorPath(name, f) };
      case 'pre-delete': return { path: flavorPath(name, f), onremove: 'delete' };
    }
  };
  const count = (name: string, id: string) => leases.get(name)?.get(id) ?? 0;
  const setCount = (name: string, id: string, c: number) => {
    const m = leases.get(name) ?? new Map<string, number>();
    if (c > 0) m.set(id, c);
    else m.delete(id);
    if (m.size) leases.set(name, m);
    else leases.delete(name);
  };
  const marker = (name: string) => `data of ${name}\n`;

  /** An acknowledged (or landed) Create: the model gains the volume and the test writes data into it. */
  const created = (name: string, flavor: Flavor, existed: boolean, made?: string) => {
    const p = flavorPath(name, flavor);
    const hasPath = flavorOpts(name, flavor)?.path !== undefined || flavorOpts(name, flavor)?.mountpoint !== undefined;
    const onRemove = flavor.endsWith('delete') || (!existed && !hasPath) ? 'delete' : 'keep';
    vols.set(name, { flavor, path: p, ro: flavor === 'ro' || flavor === 'new-ro', onRemove, made });
    foreign.delete(p);
    try {
      fs.writeFileSync(path.join(p, `.marker-${name}`), marker(name));
    } catch (err) {
      inv.check(false, `volume ${name} was acknowledged but its directory ${p} is unusable: ${(err as Error).message}`);
    }
  };
  const removed = (name: string) => {
    const v = vols.get(name)!;
    vols.delete(name);
    leases.delete(name);
    if (v.onRemove === 'keep') foreign.add(v.path);
    else foreign.delete(v.path);
    for (let p = path.dirname(v.path); v.onRemove === 'delete' && v.made && inside(p, v.made); p = path.dirname(p)) {
      if ([...vols.values()].some((o) => inside(o.path, p)) || [...foreign].some((f) => inside(f, p))) sharedMade.add(p);
    }
  };
  const firstMissing = (p: string) => {
    let missing: string | undefined;
    for (let cur = p; !fs.existsSync(cur); cur = path.dirname(cur)) missing = cur;
    return missing;
  };
  const expect_ = (r: Reply, ok: boolean, what: string) =>
    inv.check(ok ? isOk(r) : isErr(r), () => `${what}: expected ${ok ? 'success' : 'Err'}, got HTTP ${r.status} ${r.text.slice(0, 300)}`);

  /** One random request; model updated only from the reply. Throws TransportError when the server died. */
  const step = async (serve: Serve, setInflight: (op: Op | undefined) => void) => {
    const c = serve.client;
    const name = rng.pick(NAMES);
    const v = vols.get(name);
    const roll = rng.next();
    ops++;
    if (roll < 0.3) {
      const flavor = v && rng.chance(0.7) ? v.flavor : rng.pick(FLAVORS);
      const existed = fs.existsSync(flavorPath(name, flavor));
      const made = firstMissing(flavorPath(name, flavor));
      setInflight({ kind: 'create', name, flavor, existed, made, isNew: !v });
      const r = await c.create(name, flavorOpts(name, flavor));
      setInflight(undefined);
      expect_(r, !v || v.flavor === flavor, `Create ${name} ${flavor} (model: ${v?.flavor ?? 'absent'})`);
      if (!v && isOk(r)) created(name, flavor, existed, made);
    } else if (roll < 0.55) {
      const id = rng.pick(IDS);
      setInflight({ kind: 'mount', name, id });
      const r = await c.mount(name, id);
      setInflight(undefined);
      expect_(r, !!v, `Mount ${name} ${id}`);
      if (v && isOk(r)) {
        // Every Mount answers hostvol's own bind of the directory, never the data directory itself.
        const want = path.join(dirs.mounts, name);
        inv.check(r.json.Mountpoint === want, () => `Mount ${name} returned ${r.json.Mountpoint}, expected ${want}`);
        setCount(name, id, count(name, id) + 1);
      }
    } else if (roll < 0.8) {
      const held = [...(leases.get(name)?.keys() ?? [])];
      const id = held.length && rng.chance(0.8) ? rng.pick(held) : rng.pick(IDS);
      setInflight({ kind: 'unmount', name, id });
      const r = await c.unmount(name, id);
      setInflight(undefined);
      expect_(r, !!v, `Unmount ${name} ${id}`);
      if (v && isOk(r)) setCount(name, id, count(name, id) - 1);
    } else if (roll < 0.95) {
      setInflight({ kind: 'remove', name });
      const r = await c.remove(name);
      setInflight(undefined);
      // dockerd removes only volumes no container references, so leases left are lost Unmounts: with
      // no dockerd to be seen (and no container holding the directory) Remove drops them and succeeds.
      expect_(r, !!v, `Remove ${name} (mounts in model: ${leases.get(name)?.size ?? 0})`);
      if (v && isOk(r)) {
        removed(name);
        const bound = mountTable().some((m) => m.target === path.join(dirs.mounts, name));
        inv.check(!bound, `Remove ${name} acknowledged while its bind mount is still there`);
        inv.check(fs.existsSync(v.path) === (v.onRemove === 'keep'), () => `Remove ${name} (onremove ${v.onRemove}): directory ${v.path} exists=${fs.existsSync(v.path)}`);
      }
    } else {
      const r = await c.list();
      inv.check(isOk(r), () => `List failed: ${r.text}`);
    }
  };

  /**
   * After a kill: the store as the dead process left it, checked and used to settle the op in flight.
   * Returns whether the volume of an in-flight Create or Remove must exist after the restart: its
   * record decides, since Create answers only after 'ready' is durable and start-up undoes every
   * 'creating' record and finishes every 'removing' one.
   */
  const settleFromStore = (copy: StoreCopy, op: Op | undefined): boolean | undefined => {
    inv.check(copy.integrity === 'ok', () => `store integrity after kill: ${copy.integrity}`);
    if (op && (op.kind === 'mount' || op.kind === 'unmount') && vols.has(op.name)) {
      const before = count(op.name, op.id);
      const stored = copy.leases.find((l) => l.volume === op.name && l.id === op.id)?.count ?? 0;
      const after = op.kind === 'mount' ? before + 1 : Math.max(0, before - 1);
      if (inv.check(stored === before || stored === after, `${op.kind} ${op.name}/${op.id} in flight: stored count ${stored}, acknowledged ${before}`)) {
        if (stored !== before) landedEitherWay++;
        setCount(op.name, op.id, stored);
      }
    }
    // A Remove in flight drops the volume's leases (lost Unmounts) one by one before its 'removing'
    // mark: each is either still as acknowledged or gone, never another count.
    if (op?.kind === 'remove' && vols.has(op.name)) {
      for (const [id, n] of leases.get(op.name) ?? []) {
        const stored = copy.leases.find((l) => l.volume === op.name && l.id === id)?.count ?? 0;
        if (inv.check(stored === n || stored === 0, `Remove ${op.name} in flight: lease ${id} stored ${stored}, acknowledged ${n}`)) setCount(op.name, id, stored);
      }
    }
    const want = [...leases].flatMap(([vol, ids]) => [...ids].map(([id, n]) => `${vol}/${id}=${n}`)).sort();
    const got = copy.leases.map((l) => `${l.volume}/${l.id}=${l.count}`).sort();
    inv.check(JSON.stringify(want) === JSON.stringify(got), () => `lease counts after kill: store ${got.join(' ')} / acknowledged ${want.join(' ')}`);
    const inflightName = (op?.kind === 'create' && op.isNew) || (op?.kind === 'remove' && vols.has(op.name)) ? op.name : undefined;
    for (const row of copy.volumes) {
      if (row.name === inflightName) continue;
      inv.check(vols.has(row.name) && row.state === 'ready', () => `store row ${row.name} (${row.state}) does not match the acknowledged volumes`);
    }
    for (const name of vols.keys()) {
      if (name !== inflightName) inv.check(copy.volumes.some((r) => r.name === name), `acknowledged volume ${name} has no store row`);
    }
    if (!inflightName) return undefined;
    const row = copy.volumes.find((r) => r.name === inflightName);
    if (op!.kind === 'create') inv.check(row?.state !== 'removing', `Create ${inflightName} in flight left a 'removing' record`);
    return row?.state === 'ready';
  };

  /** After a restart: the op in flight settled from what the driver reports, then every invariant. */
  const verify = async (serve: Serve, op: Op | undefined, mustExist: boolean | undefined, round: number) => {
    const c = serve.client;
    const at = `after restart ${round}`;
    const names = await c.names();
    if (mustExist !== undefined) {
      const state = mustExist ? "'ready'" : "absent, 'creating' or 'removing'";
      inv.check(names.includes(op!.name) === mustExist, () => `${at}: ${op!.kind} ${op!.name} in flight, record ${state} at the kill, but List ${mustExist ? 'lacks' : 'shows'} it`);
    }
    if (op?.kind === 'create' && !vols.has(op.name) && names.includes(op.name)) {
      landedEitherWay++;
      created(op.name, op.flavor, op.existed, op.made);
    }
    if (op?.kind === 'remove' && vols.has(op.name) && !names.includes(op.name)) {
      landedEitherWay++;
      removed(op.name);
    }

    inv.check(JSON.stringify(names) === JSON.stringify([...vols.keys()].sort()), () => `${at}: List ${names} / acknowledged ${[...vols.keys()].sort()}`);
    const listed = new Map(((await c.ok('/VolumeDriver.List', {})).Volumes as { Name: string; Mountpoint: string }[]).map((x) => [x.Name, x.Mountpoint]));
    for (const [name, v] of vols) {
      const r = await c.get(name);
      if (!inv.check(isOk(r), () => `${at}: Get ${name}: ${r.text}`)) continue;
      const st = r.json.Volume.Status;
      // A host service shows the data directory in Get and List; only Mount answers the bind.
      inv.check(r.json.Volume.Mountpoint === v.path && listed.get(name) === v.path,
        () => `${at}: ${name} shown at ${r.json.Volume.Mountpoint} (Get) / ${listed.get(name)} (List), expected ${v.path}`);
      inv.check(st.path === v.path, () => `${at}: ${name} path ${st.path}, expected ${v.path}`);
      inv.check(st.onRemove === v.onRemove, () => `${at}: ${name} onRemove ${st.onRemove}, expected ${v.onRemove}`);
      inv.check(st.mounts === (leases.get(name)?.size ?? 0), () => `${at}: ${name} has ${st.mounts} mounts, acknowledged ${leases.get(name)?.size ?? 0}`);
      let data = '';
      try {
        data = fs.readFileSync(path.join(v.path, `.marker-${name}`), 'utf8');
      } catch {
        // reported below
      }
      inv.check(data === marker(name), () => `${at}: data of acknowledged volume ${name} is gone from ${v.path}`);
    }
    for (const d of foreign) inv.check(fs.existsSync(d), () => `${at}: directory ${d} (not hostvol's to delete) is gone`);

    // No directory made by hostvol without a record: every directory is a volume, an ancestor of one,
    // or foreign; and no trash of a Remove is left, since start-up finishes every 'removing' record.
    const known = [...[...vols.values()].map((v) => v.path), ...foreign];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (!inv.check(!e.name.startsWith('.hostvol-trash-'), () => `${at}: trash ${p} of a Remove is left`)) continue;
        if (!e.isDirectory()) continue;
        if (known.includes(p)) continue;
        if (sharedMade.has(p) && fs.readdirSync(p).length === 0) continue;
        if (!inv.check(known.some((k) => inside(k, p)), () => `${at}: directory ${p} exists without a volume record`)) continue;
        walk(p);
      }
    };
    walk(dirs.data);
    walk(sb.path('allow'));

    // Bind mounts: exactly one per volume with leases, of its own directory, read-only exactly for ro
    // volumes; nothing else in the sandbox.
    const wanted = [...vols].filter(([n]) => leases.has(n)).map(([n]) => path.join(dirs.mounts, n)).sort();
    const mounts = mountTable().filter((m) => inside(m.target, sb.root));
    inv.check(JSON.stringify(mounts.map((m) => m.target).sort()) === JSON.stringify(wanted),
      () => `${at}: bind mounts ${mounts.map((m) => m.target)} / wanted ${wanted}`);
    for (const m of mounts) {
      const v = vols.get(path.basename(m.target));
      if (!v) continue;
      inv.check(m.root === v.path, () => `${at}: bind mount ${m.target} shows ${m.root}, not the directory ${v.path}`);
      inv.check(m.options.split(',').includes(v.ro ? 'ro' : 'rw'), () => `${at}: bind mount ${m.target} is ${m.options}, volume ro=${v.ro}`);
    }
    // Nor anywhere else on the host: a bind of a sandbox directory outside the state dir is a leak.
    const elsewhere = mountTable().filter((m) => inside(m.root, sb.root) && !inside(m.target, sb.root) && m.fstype !== 'tmpfs');
    inv.check(elsewhere.length === 0, () => `${at}: bind mounts of volume directories outside the sandbox: ${elsewhere.map((m) => `${m.root} on ${m.target}`)}`);
    const leftovers = fs.existsSync(dirs.mounts) ? fs.readdirSync(dirs.mounts).map((e) => path.join(dirs.mounts, e)).sort() : [];
    inv.check(JSON.stringify(leftovers) === JSON.stringify(wanted), () => `${at}: mount directories ${leftovers} / wanted ${wanted}`);
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

      const mustExist = settleFromStore(readStoreCopy(cfg.stateDir), inflight);
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
      await verify(serve, inflight, mustExist, kills);
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
    notes: `${kills} SIGKILLs (${startupKills} during start-up/recovery, ${reboots} with a new boot id), ${ops} requests, ${landedEitherWay} in-flight requests that landed`,
  });
  inv.assertNone(`seed ${SEED}; log ${cfg.logFile}`);
}, LONG ? 1_800_000 : 180_000);

/** A directory that existed before hostvol: volumes on it are createdBy "existing". */
function makePre(name: string, foreign: Set<string>): void {
  const p = path.join(dirs.allowPre, name);
  fs.mkdirSync(p, { recursive: true });
  fs.writeFileSync(path.join(p, 'pre'), 'made by the test\n');
  foreign.add(p);
}
