// Issue 11, Swarm with the legacy hostvol (a host service started before dockerd). A node advertises
// a legacy plugin to the Swarm scheduler only once dockerd has activated it, and dockerd activates it
// lazily; these scenarios show when tasks are placed right after dockerd starts, and what the shipped
// systemd drop-in (deploy/docker.service.d/hostvol.conf) changes. Then the ordinary Swarm uses:
// replicas sharing a volume, `stack deploy`, and removing a service's volume.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BB_IMAGE, DRIVER, REPO, calls, e2eSuite, run, sleep, uniq, waitFor } from './harness';
import { swarmInit, tasks, waitRunning } from './lib/swarm';

const s = e2eSuite();
/** The Swarm agent re-sends its node description (plugins included) every 20 s (swarmkit nodeUpdatePeriod). */
const NODE_UPDATE_MS = 20_000;
const LOOP = 'trap "exit 0" TERM; while :; do sleep 0.2; done';

beforeAll(async () => {
  await swarmInit(s.engine);
}, 60_000);

/** `service create -d` with one hostvol volume mount and a task that runs `script` then idles. */
const createService = (name: string, volume: string, opts: string[], script = ':', replicas = 1) =>
  s.docker([
    'service', 'create', '-d', '--no-resolve-image', '--name', name, '--replicas', String(replicas),
    '--mount', [`type=volume,source=${volume},target=/d,volume-driver=${DRIVER}`, ...opts.map((o) => `volume-opt=${o}`)].join(','),
    BB_IMAGE, 'sh', '-c', `${script}; ${LOOP}`,
  ]);

/**
 * The drop-in's ExecStartPost, run as systemd would: its shell, in dockerd's mount namespace (where
 * /run/docker/plugins is the engine's own), with the engine's DOCKER_HOST.
 */
async function runDropIn(): Promise<void> {
  const unit = fs.readFileSync(path.join(REPO, 'deploy/docker.service.d/hostvol.conf'), 'utf8');
  const m = /^ExecStartPost=-?(\S+) -c '([^']*)'$/m.exec(unit);
  if (!m) throw new Error('deploy/docker.service.d/hostvol.conf has no ExecStartPost=… -c \'…\' line');
  const [cmd, ...args] = s.engine.nsenter();
  await run(cmd, [...args, m[1], '-c', m[2]], { env: s.engine.env() });
}

/**
 * `service rm`, then `volume rm` until dockerd lets it go: it refuses while the tasks' containers are
 * still stopping ("volume is in use").
 */
async function removeServiceAndVolume(service: string, volume: string): Promise<void> {
  await s.docker(['service', 'rm', service]);
  await waitFor(`volume rm ${volume} after service rm ${service}`, async () => {
    const r = await s.docker(['volume', 'rm', volume], { allowFail: true });
    if (r.code !== 0 && !/in use/.test(r.stderr)) throw new Error(`volume rm ${volume}: ${r.stderr}`);
    return r.code === 0;
  }, 30_000, 250);
}

/** Restart dockerd with no hostvol volume in its database, as on a node that never used hostvol. */
async function freshStart(): Promise<void> {
  expect((await s.docker(['volume', 'ls', '-q'])).stdout).toBe('');
  await s.engine.restartDaemon();
}

describe('placement right after dockerd starts (legacy hostvol)', () => {
  s.scenario('without the drop-in, a task stays Pending (missing plugin) past a node update, until hostvol is activated', async () => {
    const [svc, v] = [uniq('sp'), uniq('spv')];
    await freshStart();
    await createService(svc, v, ['uid=1000']);
    await sleep(NODE_UPDATE_MS + 5000);
    expect(await tasks(s.engine, svc)).toEqual([
      { desired: 'Running', state: 'Pending', error: '"no suitable node (missing plugin on 1 node)"' },
    ]);
    await runDropIn(); // what finally gets it placed: any activation, e.g. this command
    await waitRunning(s.engine, svc, 1, NODE_UPDATE_MS + 15_000);
    await removeServiceAndVolume(svc, v);
  }, 120_000);

  s.scenario("with the drop-in's command right after start, the task is placed within one node update", async () => {
    const [svc, v] = [uniq('sd'), uniq('sdv')];
    await freshStart();
    await runDropIn();
    await createService(svc, v, ['uid=1000'], 'echo placed > /d/f');
    const ms = await waitRunning(s.engine, svc, 1, NODE_UPDATE_MS + 15_000);
    console.log(`[swarm] legacy, drop-in right after start: task running after ${ms} ms`);
    await waitFor('the task to write its volume', () => fs.existsSync(path.join(s.hv.dataRoot, v, 'f')), 10_000);
    expect(fs.statSync(path.join(s.hv.dataRoot, v)).uid).toBe(1000);
    // placement only waited for the node update; the task's volume was created before its first start
    await removeServiceAndVolume(svc, v);
  }, 90_000);

  s.scenario("the drop-in's command waits for a hostvol whose socket appears after dockerd started, and activates it", async () => {
    await freshStart();
    await s.hv.stop(); // before dockerd ever activated it (a dead activated plugin costs 15 s per volume ls)
    const mark = await s.hv.mark();
    const dropIn = runDropIn();
    await sleep(2000);
    await s.hv.start();
    await dropIn;
    expect(calls(await s.hv.since(mark), 'Activate')).toHaveLength(1);
  }, 60_000);

  s.scenario('once the node holds a hostvol volume, dockerd activates hostvol at start and tasks are placed at once', async () => {
    const [svc, v, keep] = [uniq('sk'), uniq('skv'), uniq('skeep')];
    await s.docker(['volume', 'create', '-d', DRIVER, keep]);
    await s.engine.restartDaemon();
    await createService(svc, v, []);
    const ms = await waitRunning(s.engine, svc, 1, 10_000);
    console.log(`[swarm] legacy, hostvol volume in dockerd's database: task running after ${ms} ms`);
    await removeServiceAndVolume(svc, v);
    await s.docker(['volume', 'rm', keep]);
  }, 60_000);
});

describe('Swarm uses of a hostvol volume', () => {
  // The node must advertise hostvol: keep one hostvol volume in dockerd's database and restart it, the
  // at-once way shown above (a scenario run alone starts on an engine that never activated hostvol).
  beforeAll(async () => {
    await s.docker(['volume', 'create', '-d', DRIVER, uniq('anchor')]);
    await s.engine.restartDaemon();
  }, 60_000);

  s.scenario('2 replicas share one volume created with the volume-opt options; service rm then volume rm deletes it', async () => {
    const [svc, v] = [uniq('sr'), uniq('srv')];
    const mark = await s.hv.mark();
    await createService(svc, v, ['uid=1000', 'mode=0770'], 'hostname > /d/$(hostname)', 2);
    await waitRunning(s.engine, svc, 2, 30_000);
    const dir = path.join(s.hv.dataRoot, v);
    await waitFor('both replicas to write', () => fs.readdirSync(dir).length === 2, 10_000);
    expect(fs.statSync(dir)).toMatchObject({ uid: 1000 });
    expect(fs.statSync(dir).mode & 0o777).toBe(0o770);
    // Swarm sends Create for every task; the same options each time, so each succeeds
    const creates = calls(await s.hv.since(mark), 'Create', v);
    expect(creates.length).toBeGreaterThanOrEqual(1);
    for (const c of creates) expect([c.body.Opts, c.reply.Err]).toEqual([{ uid: '1000', mode: '0770' }, undefined]);

    await removeServiceAndVolume(svc, v);
    expect(fs.existsSync(dir)).toBe(false);
  }, 90_000);

  s.scenario('stack deploy of a v3 file with a driver: hostvol volume; stack rm then volume rm', async () => {
    const stack = uniq('st');
    const file = path.join(s.engine.base, `${stack}.yml`);
    fs.writeFileSync(file, [
      'version: "3.8"',
      'services:',
      '  app:',
      `    image: ${BB_IMAGE}`,
      `    command: ${JSON.stringify(['sh', '-c', `echo from-stack > /d/f; ${LOOP}`])}`,
      '    volumes: ["data:/d"]',
      'volumes:',
      '  data:',
      `    driver: ${DRIVER}`,
      '    driver_opts: { uid: "1000", mode: "0750" }',
      '',
    ].join('\n'));
    await s.docker(['stack', 'deploy', '--resolve-image', 'never', '-c', file, stack]);
    await waitRunning(s.engine, `${stack}_app`, 1, 30_000);
    const dir = path.join(s.hv.dataRoot, `${stack}_data`);
    await waitFor('the stack task to write its volume', () => fs.existsSync(path.join(dir, 'f')), 10_000);
    expect(fs.readFileSync(path.join(dir, 'f'), 'utf8')).toBe('from-stack\n');
    expect(fs.statSync(dir).uid).toBe(1000);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o750);
    expect((await s.docker(['volume', 'inspect', '-f', '{{.Driver}} {{.Labels}}', `${stack}_data`])).stdout)
      .toBe(`${DRIVER} map[com.docker.stack.namespace:${stack}]\n`);

    await s.docker(['stack', 'rm', stack]);
    await waitFor(`volume rm ${stack}_data after stack rm`, async () => (await s.docker(['volume', 'rm', `${stack}_data`], { allowFail: true })).code === 0, 30_000, 250);
    expect(fs.existsSync(dir)).toBe(false);
  }, 90_000);
});
