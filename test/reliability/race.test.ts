// Group 7: races against the file system. Several clients Create (random uid/gid/mode/ro/z/Z, path=
// inside an allowed root), Mount, Unmount and Remove volumes whose directories and parents attacker
// processes keep swapping for symlinks to a decoy tree outside (0700, root-owned, labelled), renaming
// away and back. hostvol may refuse, but must never reach outside: nothing outside changes, every
// Mountpoint it answers lies inside, every Err is clean, and it never crashes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isErr, isOk, TransportError, type Reply } from './lib/client';
import { Invariants, pick, recordFigures, Rng, seed as runSeed } from './lib/figures';
import { inside, Sandbox } from './lib/sandbox';
import { Serve, requireBuild, type ServeConfig } from './lib/serve';
import { bindSource, compareTrees, DECOY_LABEL, DECOY_USER_XATTR, mountsInvolving, snapshotTree, topMountAt, trySetXattr } from './lib/snapshot';
import { Attackers, type AttackStats, type Family } from './lib/swapper';
import { summarize } from './lib/violations';

const OPS = pick(1_000, 10_000);
const CLIENTS = pick(4, 8);
const ATTACKERS = pick(2, 3);
const PARENTS_PER_ROOT = 2;
const CHILDREN = 4;
/** One Mount in SAMPLE is checked with the attackers frozen, so the check sees what hostvol saw. */
const SAMPLE = 10;

const inv = new Invariants();
const seed = runSeed();
const started = Date.now();
const errKinds = new Map<string, number>();
const counted = { ops: 0, mounts: 0, bindChecks: 0, frozenChecks: 0 };
let attackStats: AttackStats | undefined;
let sb: Sandbox;
let serve: Serve;
let attackers: Attackers | undefined;
let roots: string[];
let selinux: 'on' | 'off';

afterAll(async () => {
  attackers?.kill();
  await serve?.kill();
  recordFigures('race', {
    title: '8. races with symlink swaps',
    seed,
    durationMs: Date.now() - started,
    checks: inv.checks,
    violations: inv.violations.length,
    requests: counted.ops,
    clients: CLIENTS,
    escapes: attackStats?.swaps,
    notes:
      `${counted.ops} Create/Mount/Unmount/Remove by ${CLIENTS} clients against ${ATTACKERS} attacker processes ` +
      `(${attackStats?.swaps ?? 0} symlink swaps, ${attackStats?.renames ?? 0} renames), selinux ${selinux}; ` +
      `${counted.mounts} Mounts answered, ${counted.bindChecks} bind sources checked in mountinfo, ` +
      `${counted.frozenChecks} mountpoints realpath-checked with attackers frozen; Errs by kind: ` +
      `${[...errKinds].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`,
  });
  sb?.cleanup();
}, 60_000);

/** The decoy tree outside: one directory per parent, with decoys named like its children. */
function plantDecoyTree(decoy: string, families: number): void {
  const mark = (p: string) => {
    fs.chownSync(p, 0, 0);
    fs.chmodSync(p, 0o700);
    if (selinux === 'on' && !trySetXattr(p, 'security.selinux', DECOY_LABEL)) throw new Error(`cannot label ${p}`);
    if (!trySetXattr(p, DECOY_USER_XATTR, 'decoy')) throw new Error(`cannot set ${DECOY_USER_XATTR} on ${p}`);
  };
  for (let k = 0; k < families; k++) {
    for (let j = 0; j < CHILDREN; j++) {
      const d = path.join(decoy, `d${k}`, `v${j}`);
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, 'keep'), `decoy ${k}/${j}\n`);
      mark(path.join(d, 'keep'));
      mark(d);
    }
    mark(path.join(decoy, `d${k}`));
  }
  mark(decoy);
}

const STACK = /\n\s+at |\bat \S+ \(\S+:\d+:\d+\)|\bundefined\b|\[object Object\]/;

function classify(err: string): string {
  const kinds: [string, RegExp][] = [
    ['symlink', /symbolic link/], ['missing directory', /no longer exists|does not exist|ENOENT/], ['outside', /outside the allowed/],
    ['in use', /in use/], ['not found', /not found|no such volume|does not exist/i], ['single-writer', /single-writer/],
    ['not a directory', /not a directory/], ['overlap', /nests with|overlaps/], ['mount failed', /mount/],
  ];
  return kinds.find(([, re]) => re.test(err))?.[0] ?? 'other';
}

/** A reply must be a success or a clean Err naming the volume; a lost connection means a crash. */
async function send(what: string, name: string, call: () => Promise<Reply>): Promise<Reply | undefined> {
  counted.ops++;
  let r: Reply;
  try {
    r = await call();
  } catch (err) {
    inv.check(!(err instanceof TransportError), () => `${what} ${name}: no reply (${(err as Error).message}); hostvol alive: ${serve.alive()}`);
    return undefined;
  }
  if (isOk(r)) return r;
  if (inv.check(isErr(r), () => `${what} ${name}: neither success nor Err: HTTP ${r.status} ${r.text.slice(0, 300)}`)) {
    const e = r.json.Err as string;
    inv.check(e.includes(`"${name}"`) && !STACK.test(e), () => `${what} ${name}: unclean Err: ${e.slice(0, 400)}`);
    errKinds.set(`${what} ${classify(e)}`, (errKinds.get(`${what} ${classify(e)}`) ?? 0) + 1);
  }
  return r;
}

function randomOptions(rng: Rng, dir: string): Record<string, string> {
  const o: Record<string, string> = { path: dir };
  if (rng.chance(0.5)) o.uid = String(1000 + rng.int(60000));
  if (rng.chance(0.5)) o.gid = String(1000 + rng.int(60000));
  if (rng.chance(0.7)) o.mode = rng.pick(['0755', '0777', '0750', '0711', '1777', '0555']);
  if (rng.chance(0.4)) o.ro = '';
  const label = rng.int(3);
  if (label === 1) o.z = '';
  if (label === 2) o.Z = '';
  return o;
}

let freezes = 0;
/** The attackers frozen while `fn` runs (nested freezes from concurrent clients share one SIGSTOP). */
async function frozen<T>(fn: () => Promise<T>): Promise<T> {
  if (freezes++ === 0) await attackers!.freeze();
  try {
    return await fn();
  } finally {
    if (--freezes === 0) attackers!.thaw();
  }
}

/** What dockerd would bind into a container must be inside: lexically, and by what it really shows. */
function checkMountpoint(name: string, mp: string, mountsDir: string, atAnswer: boolean): void {
  inv.check(typeof mp === 'string' && (inside(mp, mountsDir) || roots.some((r) => inside(mp, r))),
    () => `Mount ${name}: Mountpoint ${mp} is neither in ${mountsDir} nor in an allowed root`);
  if (inside(mp, mountsDir)) {
    // The client owns this volume, so the bind cannot change until its next request: exact check.
    counted.bindChecks++;
    const m = topMountAt(mp);
    const source = m && bindSource(m);
    inv.check(source !== undefined && roots.some((r) => inside(source, r)),
      () => `Mount ${name}: ${mp} is ${m ? `a bind mount of ${source ?? m.root}` : 'not a mount point'}, not of a directory inside the allowed roots`);
  } else if (atAnswer) {
    counted.frozenChecks++;
    let real = '';
    try {
      real = fs.realpathSync(mp);
    } catch (err) {
      real = `(${(err as NodeJS.ErrnoException).code})`;
    }
    inv.check(real === mp, () => `Mount ${name}: answered ${mp}, which leads to ${real} through a symbolic link`);
  }
}

/** One client driving its own volumes through random lifecycles until the shared budget is spent. */
async function client(c: number, dirs: string[], mountsDir: string, budget: { left: number }): Promise<void> {
  const rng = new Rng(seed + c);
  const vols = dirs.map((dir, i) => ({ name: `race-${c}-${i}`, dir, exists: false, ids: [] as string[] }));
  let nextId = 0;
  const api = serve.client;
  while (budget.left-- > 0) {
    const v = rng.pick(vols);
    const r = rng.next();
    if (!v.exists) {
      if (r < 0.9) {
        const reply = await send('Create', v.name, () => api.create(v.name, randomOptions(rng, v.dir)));
        v.exists = !!reply && isOk(reply);
        // A refused Create must leave no volume behind (dockerd would not know of it).
        if (reply && !isOk(reply)) inv.check(isErr(await api.get(v.name)), `Create ${v.name} was refused but the volume exists`);
      } else {
        await send('Mount', v.name, () => api.mount(v.name, `absent-${c}`));
      }
    } else if (v.ids.length > 0 && r < 0.5) {
      const id = v.ids.pop()!;
      await send('Unmount', v.name, () => api.unmount(v.name, id));
    } else if (r < 0.8) {
      const id = `m${c}-${nextId++}`;
      const sampled = counted.mounts % SAMPLE === 0;
      const check = async () => {
        const reply = await send('Mount', v.name, () => api.mount(v.name, id));
        if (reply && isOk(reply)) {
          counted.mounts++;
          v.ids.push(id);
          checkMountpoint(v.name, reply.json.Mountpoint, mountsDir, sampled);
        }
      };
      await (sampled ? frozen(check) : check());
    } else {
      const reply = await send('Remove', v.name, () => api.remove(v.name));
      if (reply && isOk(reply)) v.exists = false;
      else if (reply) v.exists = isOk(await api.get(v.name));
    }
  }
  // Leave nothing mounted or made, so the after-snapshot compares settled state.
  for (const v of vols) {
    for (const id of v.ids) await api.unmount(v.name, id).catch(() => undefined);
    if (v.exists) await api.remove(v.name).catch(() => undefined);
  }
}

test(`${OPS} Create/Mount/Unmount/Remove under symlink swaps never reach outside the allowed roots`, async () => {
  requireBuild();
  sb = new Sandbox('race');
  // Labels are only compared if this kernel lets us write security.selinux without SELinux.
  selinux = trySetXattr(sb.root, 'security.selinux', DECOY_LABEL) ? 'on' : 'off';
  roots = [sb.dir('allow0'), sb.dir('allow1')];
  const decoy = sb.dir('decoy');
  const families: Family[] = [];
  for (const root of roots) {
    for (let p = 0; p < PARENTS_PER_ROOT; p++) {
      const k = families.length;
      const parent = path.join(root, `p${p}`);
      fs.mkdirSync(parent);
      const children = Array.from({ length: CHILDREN }, (_, j) => ({ dir: path.join(parent, `v${j}`), decoy: path.join(decoy, `d${k}`, `v${j}`) }));
      families.push({ parent, parentDecoy: path.join(decoy, `d${k}`), children });
    }
  }
  plantDecoyTree(decoy, families.length);
  const cfg: ServeConfig = {
    socket: sb.path('hostvol.sock'), dataRoot: sb.path('data'), stateDir: sb.path('state'), allowPaths: roots,
    bootIdFile: sb.bootId(), logFile: sb.path('hostvol.log'), selinux,
  };
  serve = await Serve.start(cfg);
  const mountsDir = path.join(cfg.stateDir, 'mounts');
  const stopFile = sb.path('attackers.stop');
  // Outside = everything in the sandbox but the allowed roots and hostvol's own files.
  const excluded = [...roots, cfg.stateDir, cfg.dataRoot, cfg.socket, cfg.logFile, stopFile];
  const benign = (target: string, source: string) => inside(target, mountsDir) && roots.some((r) => inside(source, r));
  const before = snapshotTree([sb.root], excluded);
  const mountsBefore = mountsInvolving(sb.root, benign);

  const groups: Family[][] = Array.from({ length: ATTACKERS }, (_, i) => families.filter((_, k) => k % ATTACKERS === i));
  attackers = new Attackers(groups, stopFile, seed);
  const dirs = families.flatMap((f) => f.children.map((c) => c.dir));
  const budget = { left: OPS };
  await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c, dirs.filter((_, i) => i % CLIENTS === c), mountsDir, budget)));
  attackStats = await attackers.stop();

  inv.check(attackStats.swaps > 0, 'the attackers made no swaps: the test proved nothing');
  inv.check(attackStats.leftSwapped === 0, () => `${attackStats!.leftSwapped} paths were left swapped by the attackers`);
  inv.check(serve.alive(), () => `hostvol exited during the run:\n${serve.logTail()}`);
  // One check per entry outside, so the figures count what was compared and each change is listed.
  for (const { path: p, change } of compareTrees(before, snapshotTree([sb.root], excluded))) {
    inv.check(change === undefined, () => `outside the allowed roots, ${p} ${change}`);
  }
  const mountsAfter = mountsInvolving(sb.root, benign);
  inv.check(JSON.stringify(mountsAfter) === JSON.stringify(mountsBefore),
    () => `the mount table changed:\nbefore: ${mountsBefore.join('\n')}\nafter: ${mountsAfter.join('\n')}`);
  if (inv.violations.length) throw new Error(`seed ${seed}, ${attackStats.swaps} swaps:\n${summarize(inv.violations)}`);
}, pick(180_000, 900_000));
