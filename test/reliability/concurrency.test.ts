// Issue 5, group 2: concurrency. Many clients on separate connections at once: Mount/Unmount on a
// few volumes must end with exact per-ID counts (in the driver, the store and the mount table: one
// bind per volume with leases, read-only for ro ones); concurrent Creates of one name make one volume;
// Remove and Mount of one volume are serialised, and after a Remove nothing of the volume is left
// (record, lease, bind, data) however Mounts raced it; Remove is refused while a container (another
// mount namespace) has the directory mounted; Creates that share a parent directory never cost each
// other data.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client, isErr, isOk } from './lib/client';
import { Invariants, LONG, Rng, pick, recordFigures, seed } from './lib/figures';
import { Sandbox, inside, mountTable } from './lib/sandbox';
import { Holder } from './lib/holder';
import { Serve, requireBuild, sleep, type ServeConfig } from './lib/serve';
import { buildShim, delayedCalls, slowFsyncEnv, type SlowFsync } from './lib/slowfsync';
import { readStoreCopy } from './lib/store';

const SEED = seed();
const MOUNT_CLIENTS = 64;
const CREATE_CLIENTS = 32;
const OPS_PER_CLIENT = pick(40, 400);
const RACE_ROUNDS = pick(30, 300);

let sb: Sandbox;
let cfg: ServeConfig;
let serve: Serve;
const inv = new Invariants();
const started = Date.now();
let requests = 0;

beforeAll(async () => {
  requireBuild();
  sb = new Sandbox('concurrency');
  cfg = {
    socket: sb.path('hostvol.sock'),
    dataRoot: sb.dir('data'),
    stateDir: sb.path('state'),
    allowPaths: [sb.dir('allow')],
    bootIdFile: sb.bootId(),
    logFile: sb.path('hostvol.log'),
  };
  serve = await Serve.start(cfg);
}, 30_000);

afterAll(async () => {
  await serve?.kill();
  recordFigures('concurrency', {
    title: '2. concurrency',
    seed: SEED,
    durationMs: Date.now() - started,
    checks: inv.checks,
    violations: inv.violations.length,
    clients: MOUNT_CLIENTS,
    notes: `${MOUNT_CLIENTS} clients × ${OPS_PER_CLIENT} Mount/Unmount, ${CREATE_CLIENTS} concurrent Creates, ${RACE_ROUNDS} Remove/Mount races, ${requests} requests`,
  });
  sb?.cleanup();
}, 30_000);

/** Each client on its own connection, as separate dockerd goroutines or API clients would be. */
function clients(n: number): Client[] {
  return Array.from({ length: n }, () => new Client(cfg.socket, 1));
}

test(`${MOUNT_CLIENTS} clients Mount/Unmount random IDs on a few volumes → exact counts (seed ${SEED})`, async () => {
  const c = serve.client;
  const vols = ['m-rw', 'm-ro', 'm-ro2', 'm-path'];
  const opts: Record<string, Record<string, string> | null> = {
    'm-rw': null, 'm-ro': { ro: '' }, 'm-ro2': { o: 'ro' }, 'm-path': { path: sb.path('allow', 'm-path') },
  };
  for (const v of vols) await c.ok('/VolumeDriver.Create', { Name: v, Opts: opts[v] });
  const ids = Array.from({ length: 6 }, (_, i) => `${i}`.repeat(64));
  const expected = new Map<string, number>(); // "vol/id" -> count
  const cs = clients(MOUNT_CLIENTS);
  await Promise.all(
    cs.map(async (cl, k) => {
      const rng = new Rng(SEED + k);
      const mine = new Map<string, number>(); // what this client holds, so it only unmounts its own
      for (let i = 0; i < OPS_PER_CLIENT; i++) {
        const held = [...mine.keys()];
        const unmount = held.length > 0 && rng.chance(0.45);
        const key = unmount ? rng.pick(held) : `${rng.pick(vols)}/${rng.pick(ids)}`;
        const [vol, id] = key.split('/');
        const r = unmount ? await cl.unmount(vol, id) : await cl.mount(vol, id);
        requests++;
        if (!inv.check(isOk(r), () => `${unmount ? 'Unmount' : 'Mount'} ${key}: ${r.text}`)) continue;
        const d = unmount ? -1 : 1;
        mine.set(key, (mine.get(key) ?? 0) + d);
        if (mine.get(key) === 0) mine.delete(key);
        expected.set(key, (expected.get(key) ?? 0) + d);
      }
    }),
  );
  await Promise.all(cs.map((cl) => cl.close()));

  const want = [...expected].filter(([, n]) => n > 0).map(([k, n]) => `${k}=${n}`).sort();
  for (const v of vols) {
    const r = await c.ok('/VolumeDriver.Get', { Name: v });
    const n = want.filter((w) => w.startsWith(`${v}/`)).length;
    inv.check(r.Volume.Status.mounts === n, () => `${v}: Get reports ${r.Volume.Status.mounts} mounts, clients hold ${n}`);
  }
  // One bind per volume that is still mounted (read-only for ro ones), never a stacked second one.
  const table = mountTable().filter((m) => inside(m.target, sb.root));
  const binds = table.map((m) => m.target).sort();
  const wantBinds = vols.filter((v) => want.some((w) => w.startsWith(`${v}/`))).map((v) => sb.path('state', 'mounts', v)).sort();
  inv.check(JSON.stringify(binds) === JSON.stringify(wantBinds), () => `bind mounts ${binds} / wanted ${wantBinds}`);
  for (const m of table) {
    const ro = ['m-ro', 'm-ro2'].includes(path.basename(m.target));
    inv.check(m.options.split(',').includes(ro ? 'ro' : 'rw'), () => `bind ${m.target} is ${m.options}, expected ${ro ? 'ro' : 'rw'}`);
  }

  // The store has exactly the counts: read after a clean stop, then again after a restart.
  await serve.kill('SIGTERM');
  const stored = readStoreCopy(cfg.stateDir).leases.map((l) => `${l.volume}/${l.id}=${l.count}`).sort();
  inv.check(JSON.stringify(stored) === JSON.stringify(want), () => `store leases ${stored.join(' ')}\nexpected ${want.join(' ')}`);
  serve = await Serve.start(cfg);

  // Every client unmounts what it holds, concurrently: all leases and binds go, the volumes can be removed.
  const rest = [...expected].filter(([, n]) => n > 0);
  const cs2 = clients(MOUNT_CLIENTS);
  await Promise.all(
    rest.map(async ([key, n], i) => {
      const [vol, id] = key.split('/');
      for (let j = 0; j < n; j++) {
        const r = await cs2[i % cs2.length].unmount(vol, id);
        requests++;
        inv.check(isOk(r), () => `final Unmount ${key}: ${r.text}`);
      }
    }),
  );
  await Promise.all(cs2.map((cl) => cl.close()));
  for (const v of vols) {
    const r = await serve.client.remove(v);
    inv.check(isOk(r), () => `Remove ${v} after all Unmounts: ${r.text}`);
  }
  inv.check(mountTable().every((m) => !inside(m.target, sb.root)), 'bind mounts left after the last Unmount');
  inv.assertNone();
}, LONG ? 600_000 : 60_000);

test(`${CREATE_CLIENTS} clients Create the same name at once → one volume, every reply success`, async () => {
  for (const [name, opts] of [
    ['same', null],
    ['same-ro', { ro: '' }],
    ['same-path', { path: sb.path('allow', 'deep', 'same-path') }],
  ] as const) {
    const cs = clients(CREATE_CLIENTS);
    const replies = await Promise.all(cs.map((cl) => cl.create(name, opts as Record<string, string> | null)));
    requests += replies.length;
    await Promise.all(cs.map((cl) => cl.close()));
    replies.forEach((r, i) => inv.check(isOk(r), () => `Create ${name} from client ${i}: ${r.text}`));
    const names = (await serve.client.names()).filter((n) => n === name);
    inv.check(names.length === 1, () => `${name}: List shows it ${names.length} times`);
    const got = await serve.client.ok('/VolumeDriver.Get', { Name: name });
    inv.check(fs.statSync(got.Volume.Status.path).isDirectory(), `${name}: no directory`);
  }
  // The same name with different options at once: exactly one kind wins, the others get a clear Err.
  const cs = clients(CREATE_CLIENTS);
  const replies = await Promise.all(cs.map((cl, i) => cl.create('contested', i % 2 ? { ro: '' } : { onremove: 'delete' })));
  requests += replies.length;
  await Promise.all(cs.map((cl) => cl.close()));
  const ok = replies.filter(isOk).length;
  inv.check(ok === CREATE_CLIENTS / 2, () => `contested: ${ok} successes, expected ${CREATE_CLIENTS / 2}`);
  inv.check(replies.filter(isErr).every((r) => /already exists with options/.test(r.json.Err)), 'contested: an Err is not the conflict message');
  inv.assertNone();
}, 60_000);

test(`Remove racing Mount (${RACE_ROUNDS} rounds) → serialised; after a Remove nothing of the volume is left`, async () => {
  const rng = new Rng(SEED ^ 0x5eed);
  const cs = clients(8);
  const removedNames: string[] = [];
  for (let round = 0; round < RACE_ROUNDS; round++) {
    const name = `race${round}`;
    const ro = round % 2 === 1;
    const bind = sb.path('state', 'mounts', name);
    await serve.client.ok('/VolumeDriver.Create', { Name: name, Opts: ro ? { ro: '' } : null });
    const dir = (await serve.client.ok('/VolumeDriver.Get', { Name: name })).Volume.Status.path as string;
    fs.writeFileSync(path.join(dir, 'data'), `${name}\n`);
    // Some rounds start with a mount that is released during the race.
    const pre = rng.chance(0.3);
    if (pre) await serve.client.ok('/VolumeDriver.Mount', { Name: name, ID: 'pre' });
    const ops = cs.map((cl, i) => {
      const kind = i % 4 === 0 ? 'remove' : i % 4 === 3 && pre ? 'unmount' : 'mount';
      return (async () => {
        await new Promise((r) => setTimeout(r, rng.int(3)));
        const r = kind === 'remove' ? await cl.remove(name) : kind === 'mount' ? await cl.mount(name, `id${i}`) : await cl.unmount(name, 'pre');
        return { kind, id: `id${i}`, r };
      })();
    });
    const results = await Promise.all(ops);
    requests += results.length + 2;
    // dockerd sends Remove only when no container references the volume, so every lease left is a
    // lost Unmount: with no dockerd to be seen, exactly one Remove wins; any other comes after it.
    const removes = results.filter((x) => x.kind === 'remove');
    inv.check(removes.filter((x) => isOk(x.r)).length === 1, () => `${name}: ${removes.filter((x) => isOk(x.r)).length} Removes succeeded: ${removes.map((x) => x.r.text)}`);
    // Serialised with the Remove: each Mount/Unmount ran wholly before it (success) or after it
    // (the volume does not exist); never a half-removed volume ("being removed") or another error.
    for (const x of results) {
      const fine = isOk(x.r) ? (x.kind === 'mount' ? x.r.json.Mountpoint === bind : true) : /does not exist/.test(x.r.json?.Err ?? '');
      inv.check(fine, () => `${name}: ${x.kind} ${x.id}: ${x.r.text}`);
    }
    // Nothing of the volume remains: no record, no lease, no bind (a Mount that succeeded before the
    // Remove was superseded, and the path it handed out no longer reaches the data), no data.
    const g = await serve.client.get(name);
    inv.check(isErr(g) && /does not exist/.test(g.json.Err), () => `${name}: Get after Remove: ${g.text}`);
    inv.check(!(await serve.client.names()).includes(name), `${name}: List shows it after Remove`);
    inv.check(!mountTable().some((m) => m.target === bind), `${name}: removed but still bind-mounted at ${bind}`);
    inv.check(!fs.existsSync(path.join(bind, 'data')), `${name}: the path a Mount handed out still reaches the removed volume's data`);
    inv.check(!fs.existsSync(dir), `${name}: removed but its directory ${dir} is still there`);
    const m = await serve.client.mount(name, 'late');
    inv.check(isErr(m) && /does not exist/.test(m.json.Err), () => `${name}: Mount after Remove: ${m.text}`);
    removedNames.push(name);
  }
  await Promise.all(cs.map((cl) => cl.close()));
  const trash = fs.readdirSync(cfg.dataRoot).filter((e) => e.startsWith('.hostvol-trash-'));
  inv.check(trash.length === 0, () => `trash left in the data root: ${trash}`);
  // And durably so: after a restart no record or lease of a removed volume is in the store.
  await serve.kill('SIGTERM');
  const copy = readStoreCopy(cfg.stateDir);
  const rows = copy.volumes.filter((v) => removedNames.includes(v.name)).map((v) => `${v.name}:${v.state}`);
  const held = copy.leases.filter((l) => removedNames.includes(l.volume)).map((l) => `${l.volume}/${l.id}`);
  inv.check(rows.length === 0 && held.length === 0, () => `store after the races: rows ${rows}, leases ${held}`);
  serve = await Serve.start(cfg);
  inv.assertNone(`seed ${SEED}`);
}, LONG ? 600_000 : 60_000);

test('Remove is refused while a container has the directory mounted, and succeeds once it is gone', async () => {
  const c = serve.client;
  await c.ok('/VolumeDriver.Create', { Name: 'held', Opts: null });
  const dir = (await c.ok('/VolumeDriver.Get', { Name: 'held' })).Volume.Status.path as string;
  fs.writeFileSync(path.join(dir, 'data'), 'in use\n');
  const bind = await c.ok('/VolumeDriver.Mount', { Name: 'held', ID: 'ctr' });
  const holder = await Holder.start(dir, sb.path('holder'));
  try {
    // The lease looks lost (dockerd would not send Remove otherwise), but a namespace still uses the data.
    const r = await c.remove('held');
    inv.check(isErr(r) && /in use/.test(r.json.Err) && r.json.Err.includes('"held"'), () => `Remove while held: ${r.text}`);
    const st = (await c.ok('/VolumeDriver.Get', { Name: 'held' })).Volume.Status;
    inv.check(st.mounts === 1, `held: the refused Remove changed its leases (${st.mounts} mounts)`);
    inv.check(fs.readFileSync(path.join(dir, 'data'), 'utf8') === 'in use\n', 'held: the refused Remove touched the data');
    inv.check(mountTable().some((m) => m.target === bind.Mountpoint), 'held: the refused Remove released the bind');
    const again = await c.mount('held', 'ctr2');
    inv.check(isOk(again), () => `held: Mount after a refused Remove: ${again.text}`);
  } finally {
    await holder.stop();
  }
  const r = await c.remove('held');
  inv.check(isOk(r), () => `Remove once the holder is gone: ${r.text}`);
  inv.check(!fs.existsSync(dir) && !mountTable().some((m) => m.target === bind.Mountpoint), 'held: data or bind left after Remove');
  inv.assertNone();
}, 60_000);

test('Creates with a shared new parent directory, one failing late → the others keep their data', async () => {
  // "a-fail" is Created with z on ramfs, which refuses security.* xattrs: its labelling fails after
  // it made <ram>/shared/a-fail and the shared parent. A disk whose fsync of a-fail's new directory
  // takes a second (an LD_PRELOAD shim on fsync, which Node's fs reaches) holds that Create between
  // mkdir and the failure, while "b" is created beside it; b's own syncs are not delayed.
  const ram = sb.dir('ram');
  execFileSync('mount', ['-t', 'ramfs', '-o', 'mode=0755', 'ramfs', ram]);
  const shim = buildShim(sb.path('shim'));
  const parent = path.join(ram, 'shared');
  const slow: SlowFsync = { shim, delayMs: 1000, pathPrefix: path.join(parent, 'a-fail'), countFile: sb.path('fsyncs') };
  const labelled = { ...cfg, socket: sb.path('labelled.sock'), stateDir: sb.path('state2'), dataRoot: sb.dir('data2'), selinux: 'on' as const,
    allowPaths: [ram], logFile: sb.path('hostvol2.log') };
  const rounds = pick(3, 10);
  const s = await Serve.start({ ...labelled, env: slowFsyncEnv(slow) });
  try {
    for (let i = 0; i < rounds; i++) {
      let settled = false;
      const failing = s.client.create(`a${i}-fail`, { path: path.join(parent, 'a-fail'), z: '' }).finally(() => (settled = true));
      for (let t = 0; t < 200 && !fs.existsSync(parent); t++) await sleep(5);
      const ok = await s.client.create(`b${i}`, { path: path.join(parent, `b${i}`) });
      requests += 2;
      inv.check(!settled, `a${i}-fail finished before b${i} was created (test assumption: the fsync delay did not hold it)`);
      if (!inv.check(isOk(ok), () => `Create b${i}: ${ok.text}`)) continue;
      fs.writeFileSync(path.join(parent, `b${i}`, 'data'), 'precious\n');
      const f = await failing;
      inv.check(isErr(f) && /does not support it \(EOPNOTSUPP\)/.test(f.json.Err) && f.json.Err.includes(`"a${i}-fail"`), () => `Create a${i}-fail should fail with the labelling error: ${f.text}`);
      inv.check(!fs.existsSync(path.join(parent, 'a-fail')), `a${i}-fail: half-made directory left behind`);
      inv.check(fs.existsSync(path.join(parent, `b${i}`, 'data')), `b${i}: data lost when the Create of a${i}-fail was undone`);
      inv.check(isOk(await s.client.get(`b${i}`)), `b${i}: Get fails after a${i}-fail was undone`);
      inv.check(isErr(await s.client.get(`a${i}-fail`)), `a${i}-fail: Get finds a failed Create`);
      // Next round: the shared parent must be new again (b's path= data is kept by its Remove).
      await s.client.ok('/VolumeDriver.Remove', { Name: `b${i}` });
      fs.rmSync(parent, { recursive: true });
    }
    inv.check(delayedCalls(slow) > 0, 'the fsync shim delayed nothing (test assumption)');
  } finally {
    await s.kill();
  }
  inv.assertNone();
}, 90_000);
