// Issue 13 with real engines: two private dockerds (each in its own namespaces, as the harness makes
// them), each with its own hostvol `--etcd … --node-name nodeN`, one shared data root and a real
// 3-member etcd cluster. What a Swarm of two nodes on a shared file system sees.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EtcdCluster } from '../reliability/lib/etcd-cluster';
import { IDLE, RUN, inspectVolume, uniq } from './harness';
import { startEngine, type Engine } from './lib/engine';
import { startHostvol, type Hostvol } from './lib/hostvol';
import { BB_IMAGE } from './lib/images';

jest.setTimeout(300_000);

let dir: string;
let etcd: EtcdCluster;
const engines: Engine[] = [];
const hostvols: Hostvol[] = [];
const TTL = 3;
let shared: string;

beforeAll(async () => {
  // Not hv-e2e-*: the harness sweeps those as runs left behind.
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostvol-cluster-e2e-'));
  shared = path.join(dir, 'shared');
  fs.mkdirSync(shared);
  etcd = await EtcdCluster.start(path.join(dir, 'etcd'));
  for (const node of ['node1', 'node2']) {
    const e = await startEngine();
    engines.push(e);
    hostvols.push(await startHostvol(e, { extraArgs: ['--data-root', shared, '--etcd', etcd.urls.join(','), '--node-name', node, '--lease-ttl', String(TTL)] }));
    await e.docker(['volume', 'ls']); // activates the legacy plugin
  }
}, 300_000);

afterAll(async () => {
  const left: string[] = [];
  for (const e of engines) {
    await e.teardown();
    left.push(...e.leftovers());
  }
  await etcd?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  if (left.length) throw new Error(`teardown left state behind:\n${left.join('\n')}`);
}, 180_000);

const [one, two] = [() => engines[0], () => engines[1]];

test('created on node 1: listed and inspectable on node 2, scope global; written by a container on node 1, read on node 2', async () => {
  const v = uniq('cl');
  await one().docker(['volume', 'create', '-d', 'hostvol', '-o', 'uid=1000', '-o', 'mode=0750', v]);
  const ls = await two().docker(['volume', 'ls', '--format', '{{.Driver}} {{.Name}} {{.Scope}}']);
  expect(ls.stdout.split('\n')).toContain(`hostvol ${v} global`);
  const [a, b] = [await inspectVolume(one(), v), await inspectVolume(two(), v)];
  expect(b).toMatchObject({ Name: v, Driver: 'hostvol', Scope: 'global', Mountpoint: path.join(shared, v) });
  expect(b.Status.options).toEqual(a.Status.options);
  await one().docker(['run', '--rm', ...RUN, '-v', `${v}:/data`, BB_IMAGE, 'sh', '-c', 'echo from-node1 > /data/f']);
  expect((await two().docker(['run', '--rm', ...RUN, '-v', `${v}:/data`, BB_IMAGE, 'cat', '/data/f'])).stdout).toBe('from-node1\n');
});

test("Remove on node 2 is refused while node 1's container runs, then accepted", async () => {
  const v = uniq('clrm');
  await one().docker(['volume', 'create', '-d', 'hostvol', v]);
  await one().docker(['run', '-d', ...RUN, '--name', `${v}-c`, '-v', `${v}:/data`, BB_IMAGE, ...IDLE]);
  await two().docker(['volume', 'inspect', v]);
  const refused = await two().docker(['volume', 'rm', v], { allowFail: true });
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toContain(`volume "${v}" is in use on node node1`);
  expect(fs.existsSync(path.join(shared, v))).toBe(true);
  await one().docker(['rm', '-f', `${v}-c`]);
  await two().docker(['volume', 'rm', v]);
  expect(fs.existsSync(path.join(shared, v))).toBe(false);
});

test('Z: a container on node 1 holds it, node 2 is refused; once it stops, node 2 runs', async () => {
  const v = uniq('clz');
  await one().docker(['volume', 'create', '-d', 'hostvol', '-o', 'Z', v]);
  await one().docker(['run', '-d', ...RUN, '--name', `${v}-c`, '-v', `${v}:/data`, BB_IMAGE, ...IDLE]);
  const refused = await two().docker(['run', '--rm', ...RUN, '-v', `${v}:/data`, BB_IMAGE, 'true'], { allowFail: true });
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toContain(`volume "${v}" is single-writer (option Z) and is already mounted by another container (on node node1)`);
  await one().docker(['rm', '-f', `${v}-c`]);
  await two().docker(['run', '--rm', ...RUN, '-v', `${v}:/data`, BB_IMAGE, 'true']);
});

test("Z: node 1's hostvol SIGKILLed under a running container: node 2 still refused; node 1's dockerd gone: node 2 runs after the TTL", async () => {
  const v = uniq('clk');
  await one().docker(['volume', 'create', '-d', 'hostvol', '-o', 'Z', v]);
  await one().docker(['run', '-d', ...RUN, '--name', `${v}-c`, '-v', `${v}:/data`, BB_IMAGE, ...IDLE]);
  await hostvols[0].kill();
  const killed = Date.now();
  const refused = await two().docker(['run', '--rm', ...RUN, '-v', `${v}:/data`, BB_IMAGE, 'true'], { allowFail: true });
  expect(refused.stderr).toContain('single-writer');
  // The node goes down whole (its container with it); its lease outlives it by the TTL, no more.
  await one().stopDaemon('SIGTERM');
  // (dockerd's graceful stop itself may take longer than the TTL: it waits for the dead plugin.)
  const stopped = Date.now();
  let last = refused;
  while (last.code !== 0 && Date.now() - stopped < 4 * TTL * 1000) {
    last = await two().docker(['run', '--rm', ...RUN, '-v', `${v}:/data`, BB_IMAGE, 'true'], { allowFail: true });
  }
  expect(last.stderr).not.toMatch(/Error/);
  expect(Date.now() - killed).toBeGreaterThan(TTL * 1000 - 500);
});
