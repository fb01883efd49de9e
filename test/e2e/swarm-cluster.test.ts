// Issue 13 with Swarm: two private engines whose network namespaces are joined by a veth pair on private
// test addresses (lib/veth.ts) form a Swarm (manager + worker). Each node has its own hostvol `--etcd …
// --node-name nodeN` on one shared data root, with a real 3-member etcd on loopback (hostvol runs in the
// host's network namespace, dockerd in its engine's). A one-replica service is moved from node 1 to
// node 2 by changing its placement constraint: its data goes with it, and the volume's mount lease in
// etcd moves from node 1 to node 2. With option Z the move cannot make two writers: while node 1's task
// runs, node 2's is refused; once node 1's is stopped, node 2's starts.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EtcdCluster } from '../reliability/lib/etcd-cluster';
import { calls, uniq } from './harness';
import { startEngine, sweepStaleRuns, type Engine } from './lib/engine';
import { startHostvol, type Hostvol } from './lib/hostvol';
import { BB_IMAGE } from './lib/images';
import { killInFlight, run, sleep, waitFor } from './lib/proc';
import { swarmPair, tasks } from './lib/swarm';
import { hostLinks, joinEngines, type Veth } from './lib/veth';

jest.setTimeout(120_000);

const NODES = ['node1', 'node2'] as const;
/** hostvol's default --etcd-prefix: lease keys are <prefix>/leases/<volume>/<node>/<mount id>. */
const PREFIX = '/hostvol';
const LOOP = 'trap "exit 0" TERM; while :; do sleep 0.2; done';
let dir: string;
let etcd: EtcdCluster | undefined;
let veth: Veth | undefined;
const engines: Engine[] = [];
const hostvols: Hostvol[] = [];

beforeAll(async () => {
  const t0 = Date.now();
  // Not hv-e2e-*: the harness sweeps those as runs left behind.
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostvol-swarm-cluster-'));
  const shared = path.join(dir, 'shared');
  fs.mkdirSync(shared);
  etcd = await EtcdCluster.start(path.join(dir, 'etcd'));
  const urls = etcd.urls.join(',');
  await sweepStaleRuns(); // once: the two engines start in parallel
  const started = await Promise.allSettled(NODES.map(async (node, i) => {
    const e = (engines[i] = await startEngine({ sweep: false }));
    hostvols[i] = await startHostvol(e, { extraArgs: ['--data-root', shared, '--etcd', urls, '--node-name', node] });
    // Activated before the node joins, so the node description Swarm schedules by lists hostvol.
    await e.docker(['volume', 'ls']);
  }));
  for (const r of started) if (r.status === 'rejected') throw r.reason;
  veth = await joinEngines(engines[0], engines[1]);
  const ids = await swarmPair(engines[0], veth.a.addr, engines[1], veth.b.addr);
  // Both engines share the host's hostname: the nodes are told apart by a label named after their hostvol.
  for (const [i, id] of ids.entries()) await engines[0].docker(['node', 'update', '--label-add', `hostvol=${NODES[i]}`, id]);
  console.log(`[swarm-cluster] etcd, 2 engines + hostvols, veth ${veth.a.addr}-${veth.b.addr}, Swarm of 2: ${Date.now() - t0} ms`);
}, 180_000);

afterAll(async () => {
  killInFlight();
  const left: string[] = [];
  // Leave the Swarm first, worker then manager: otherwise the manager restarts the tasks teardown removes.
  for (const e of [...engines].reverse()) if (e) await e.docker(['swarm', 'leave', '--force'], { allowFail: true, timeoutMs: 30_000 });
  await veth?.remove();
  if (veth) {
    const host = await hostLinks();
    for (const dev of [veth.a.dev, veth.b.dev]) if (host.includes(dev)) left.push(`veth ${dev} in the host's network namespace`);
  }
  for (const e of engines) {
    if (!e) continue;
    await e.teardown();
    left.push(...e.leftovers());
  }
  await etcd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (left.length) throw new Error(`teardown left state behind:\n${left.join('\n')}`);
}, 120_000);

const [one, two] = [() => engines[0], () => engines[1]];
const onNode = (node: string) => `node.labels.hostvol==${node}`;

/** The one running task container of `service` on engine `e`, once there is one. */
function taskContainer(e: Engine, service: string, timeoutMs = 60_000): Promise<string> {
  return waitFor(`a running task of ${service} on engine ${e.id}`, async () => {
    const ids = (await e.docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`])).stdout.split('\n').filter(Boolean);
    return ids.length === 1 ? ids[0] : undefined;
  }, timeoutMs, 250);
}

/** Whether a task container of `service` runs on engine `e` now. */
async function runsOn(e: Engine, service: string): Promise<boolean> {
  return (await e.docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`])).stdout.trim() !== '';
}

/** The nodes holding a mount lease of `volume` in etcd, as the cluster sees them. */
async function leaseNodes(volume: string): Promise<string[]> {
  const r = await run('etcdctl', ['--endpoints', etcd!.urls.join(','), 'get', '--prefix', '--keys-only', `${PREFIX}/leases/${volume}/`], {
    env: { ...process.env, ETCDCTL_API: '3' },
  });
  return r.stdout.split('\n').filter(Boolean).map((k) => decodeURIComponent(k.slice(`${PREFIX}/leases/${volume}/`.length).split('/')[0]));
}

/**
 * Expect `get()` to come to equal `expected` within `timeoutMs` (polled). For what follows a task's
 * end: dockerd unmounts a stopped task's volume, and Swarm records the task's end, around the time the
 * next task starts.
 */
async function eventually<T>(get: () => Promise<T>, expected: T, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = await get();
  while (JSON.stringify(last) !== JSON.stringify(expected) && Date.now() < until) {
    await sleep(200);
    last = await get();
  }
  expect(last).toEqual(expected);
}

/** A test that prints both nodes' hostvol and dockerd log tails when it fails. */
function scenario(name: string, fn: () => Promise<void>): void {
  test(name, async () => {
    try {
      await fn();
    } catch (e) {
      killInFlight();
      const tails = engines.flatMap((e, i) => [
        `----- ${NODES[i]} hostvol (${hostvols[i]?.logFile}) -----\n${hostvols[i]?.logTail(40)}`,
        `----- ${NODES[i]} dockerd (${e.dockerdLog}) -----\n${e.logTail(40)}`,
      ]);
      console.error(`FAILED: ${name}\n${tails.join('\n')}`);
      throw e;
    }
  });
}

/** Move `service` from node 1 to node 2 by swapping its placement constraint. */
const moveToNode2 = (service: string, extra: string[] = []) =>
  one().docker(['service', 'update', '-d', '--no-resolve-image', ...extra, '--constraint-rm', onNode('node1'), '--constraint-add', onNode('node2'), service]);

scenario('a one-replica stack service on a `driver: hostvol` volume keeps its data when its task moves to node 2; the lease moves with it', async () => {
  const stack = uniq('mv');
  const [svc, v] = [`${stack}_app`, `${stack}_data`];
  const file = path.join(dir, `${stack}.yml`);
  fs.writeFileSync(file, [
    'version: "3.8"',
    'services:',
    '  app:',
    `    image: ${BB_IMAGE}`,
    `    command: ${JSON.stringify(['sh', '-c', LOOP])}`,
    '    volumes: ["data:/d"]',
    `    deploy: { replicas: 1, placement: { constraints: ["${onNode('node1')}"] } }`,
    '    networks: [hostnet]',
    // Not the stack's default overlay network: its VIP needs IPVS, which test kernels may lack, and the
    // task needs no network at all (the engine's "host" network is its private namespace).
    'networks:',
    '  hostnet: { external: true, name: host }',
    'volumes:',
    '  data:',
    '    driver: hostvol',
    '    driver_opts: { uid: "1000", mode: "0770" }',
    '',
  ].join('\n'));
  await one().docker(['stack', 'deploy', '--resolve-image', 'never', '-c', file, stack]);
  const c1 = await taskContainer(one(), svc);
  await one().docker(['exec', c1, 'sh', '-c', 'echo written-on-node1 > /d/f']);
  await eventually(() => leaseNodes(v), ['node1']);

  const t0 = Date.now();
  await moveToNode2(svc);
  const c2 = await taskContainer(two(), svc);
  console.log(`[swarm-cluster] task moved to node 2 in ${Date.now() - t0} ms`);
  expect((await two().docker(['exec', c2, 'cat', '/d/f'])).stdout).toBe('written-on-node1\n');
  // node 2 created nothing new: it mounted the volume node 1 created, with the stack's options
  expect((await two().docker(['exec', c2, 'stat', '-c', '%u %a', '/d'])).stdout).toBe('1000 770\n');
  expect(await runsOn(one(), svc)).toBe(false);
  await eventually(() => leaseNodes(v), ['node2']);
  // Swarm's view: one task, running (on node 2); node 1's shut down
  await eventually(async () => (await tasks(one(), svc)).map((t) => `${t.desired} ${t.state}`), ['Running Running', 'Shutdown Shutdown']);
});

scenario('Z: while its task runs on node 1 the task on node 2 is refused (start-first); stop-first then moves it, never two writers', async () => {
  const [svc, v] = [uniq('z'), uniq('zv')];
  await one().docker([
    'service', 'create', '-d', '--no-resolve-image', '--name', svc, '--replicas', '1', '--constraint', onNode('node1'),
    '--restart-delay', '1s', '--mount', `type=volume,source=${v},target=/d,volume-driver=hostvol,volume-opt=Z`, BB_IMAGE, 'sh', '-c', LOOP,
  ]);
  const c1 = await taskContainer(one(), svc);
  await one().docker(['exec', c1, 'sh', '-c', 'echo written-on-node1 > /d/f']);

  // start-first: Swarm starts the new task before stopping the old one, i.e. asks for a second writer.
  await moveToNode2(svc, ['--update-order', 'start-first']);
  const first = await waitFor('node 2 to be refused a Mount (or to start a second writer)', async () =>
    calls(await hostvols[1].requests(), 'Mount', v).find((r) => r.reply.Err) ??
      ((await runsOn(two(), svc)) && `two writers: node 2 runs a task while node 1's holds ${v}`), 60_000, 250);
  expect(typeof first === 'string' ? first : first.reply.Err).toBe(
    `volume "${v}" is single-writer (option Z) and is already mounted by another container (on node node1); stop that container first, or use a volume without Z`,
  );
  await waitFor('Swarm to pause the update', async () =>
    (await one().docker(['service', 'inspect', '-f', '{{.UpdateStatus.State}}', svc])).stdout.trim() === 'paused', 30_000, 250);
  expect(await runsOn(one(), svc)).toBe(true);
  expect(await runsOn(two(), svc)).toBe(false);
  await eventually(() => leaseNodes(v), ['node1']);

  // stop-first: node 1's task stops (and its Unmount releases the lease) before node 2's task starts.
  await one().docker(['service', 'update', '-d', '--no-resolve-image', '--update-order', 'stop-first', svc]);
  const c2 = await taskContainer(two(), svc);
  expect((await two().docker(['exec', c2, 'cat', '/d/f'])).stdout).toBe('written-on-node1\n');
  expect(await runsOn(one(), svc)).toBe(false);
  await eventually(() => leaseNodes(v), ['node2']);
  // From the two request logs (one clock): node 1 held the volume from its Mount until its Unmount began;
  // every Mount of node 2 that ended before then was refused, and the one that succeeded ended after it.
  const [unmount1] = calls(await hostvols[0].requests(), 'Unmount', v);
  const released = unmount1.time - unmount1.ms;
  const mounts2 = calls(await hostvols[1].requests(), 'Mount', v);
  for (const m of mounts2.filter((r) => r.time < released)) expect(m.reply.Err).toContain('single-writer');
  const granted = mounts2.filter((r) => !r.reply.Err);
  expect(granted).toHaveLength(1);
  expect(granted[0].time).toBeGreaterThan(released);
});
