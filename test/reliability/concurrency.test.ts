// Issue 5, group 2: concurrency. Many clients on separate connections at once: Mount/Unmount on a
// few volumes must end with exact per-ID counts (in the driver, the store and the mount table);
// concurrent Creates of one name make one volume; Remove racing Mount never leaves a removed volume
// with a live lease; Creates that share a parent directory never cost each other data.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client, isErr, isOk } from './lib/client';
import { Invariants, LONG, Rng, pick, recordFigures, seed } from './lib/figures';
import { Sandbox, inside, mountTable } from './lib/sandbox';
import { Serve, requireBuild, type ServeConfig } from './lib/serve';
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
  // One read-only bind per ro volume that is still mounted, never a stacked second one.
  const binds = mountTable().map((m) => m.target).filter((t) => inside(t, sb.root)).sort();
  const wantBinds = ['m-ro', 'm-ro2'].filter((v) => want.some((w) => w.startsWith(`${v}/`))).map((v) => sb.path('state', 'mounts', v));
  inv.check(JSON.stringify(binds) === JSON.stringify(wantBinds), () => `bind mounts ${binds} / wanted ${wantBinds}`);

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

test(`Remove racing Mount (${RACE_ROUNDS} rounds) → never a removed volume with a live lease`, async () => {
  const rng = new Rng(SEED ^ 0x5eed);
  const cs = clients(8);
  for (let round = 0; round < RACE_ROUNDS; round++) {
    const name = `race${round}`;
    const ro = round % 2 === 1;
    await serve.client.ok('/VolumeDriver.Create', { Name: name, Opts: ro ? { ro: '' } : null });
    const dir = (await serve.client.ok('/VolumeDriver.Get', { Name: name })).Volume.Status.path as string;
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
    const removed = results.some((x) => x.kind === 'remove' && isOk(x.r));
    const mounted = results.filter((x) => x.kind === 'mount' && isOk(x.r));
    const exists = (await serve.client.get(name)).json?.Volume !== undefined;
    inv.check(removed !== exists, () => `${name}: Remove acknowledged=${removed} but Get finds it=${exists}`);
    if (removed) {
      inv.check(!fs.existsSync(dir), `${name}: removed but its directory ${dir} is still there`);
      inv.check(!mountTable().some((m) => m.target === sb.path('state', 'mounts', name)), `${name}: removed but still bind-mounted`);
      // No Mount of this round is released again, so any that succeeded must have blocked the Remove.
      for (const x of mounted) inv.check(false, `${name}: Mount ${x.id} succeeded on a volume that was then removed`);
    } else {
      const st = (await serve.client.ok('/VolumeDriver.Get', { Name: name })).Volume.Status;
      const preHeld = pre && !results.some((x) => x.kind === 'unmount' && isOk(x.r));
      inv.check(st.mounts === mounted.length + (preHeld ? 1 : 0), () => `${name}: ${st.mounts} mounts, ${mounted.length} acknowledged`);
      inv.check(results.filter((x) => x.kind === 'remove').every((x) => isOk(x.r) || /in use|does not exist/.test(x.r.json?.Err)), `${name}: unexpected Remove reply`);
      // Clean up: release everything, then the Remove must succeed.
      for (const x of mounted) await serve.client.ok('/VolumeDriver.Unmount', { Name: name, ID: x.id });
      if (preHeld) await serve.client.ok('/VolumeDriver.Unmount', { Name: name, ID: 'pre' });
      await serve.client.ok('/VolumeDriver.Remove', { Name: name });
    }
  }
  await Promise.all(cs.map((cl) => cl.close()));
  inv.assertNone(`seed ${SEED}`);
}, LONG ? 600_000 : 60_000);

test('Creates with a shared new parent directory, one failing late → the others keep their data', async () => {
  // A fake setfattr makes labelling slow and, for names ending in "-fail", failing: the Create of
  // "a-fail" makes <allow>/shared<N>/a-fail and fails after "b" has been created in the same parent.
  const bin = sb.dir('fakebin');
  fs.writeFileSync(path.join(bin, 'setfattr'), '#!/bin/sh\nsleep 0.3\ncase "$*" in *-fail*) echo "setfattr: injected failure" >&2; exit 1;; esac\nexit 0\n', { mode: 0o755 });
  const labelled = { ...cfg, socket: sb.path('labelled.sock'), stateDir: sb.path('state2'), dataRoot: sb.dir('data2'), selinux: 'on' as const,
    logFile: sb.path('hostvol2.log'), env: { PATH: `${bin}:${process.env.PATH}` } };
  const s = await Serve.start(labelled);
  try {
    const rounds = pick(3, 10);
    for (let i = 0; i < rounds; i++) {
      const parent = sb.path('allow', `shared${i}`);
      const failing = s.client.create(`a${i}-fail`, { path: path.join(parent, `a${i}-fail`), z: '' });
      await new Promise((r) => setTimeout(r, 100));
      const ok = await s.client.create(`b${i}`, { path: path.join(parent, `b${i}`) });
      requests += 2;
      if (!inv.check(isOk(ok), () => `Create b${i}: ${ok.text}`)) continue;
      fs.writeFileSync(path.join(parent, `b${i}`, 'data'), 'precious\n');
      const f = await failing;
      inv.check(isErr(f) && /relabel|setfattr/.test(f.json.Err), () => `Create a${i}-fail should fail with the labelling error: ${f.text}`);
      inv.check(!fs.existsSync(path.join(parent, `a${i}-fail`)), `a${i}-fail: half-made directory left behind`);
      inv.check(fs.existsSync(path.join(parent, `b${i}`, 'data')), `b${i}: data lost when the Create of a${i}-fail was undone`);
      inv.check(isOk(await s.client.get(`b${i}`)), `b${i}: Get fails after a${i}-fail was undone`);
    }
  } finally {
    await s.kill();
  }
  inv.assertNone();
}, 60_000);
