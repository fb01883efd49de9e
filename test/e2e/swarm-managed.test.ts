// Issue 11, Swarm with hostvol as a managed plugin: dockerd starts enabled plugins before Swarm and
// advertises them at once, so a service created right after dockerd starts is placed without help
// (compare swarm.test.ts for the legacy plugin). The task's data lands in the host's state.source, and
// `docker volume inspect` shows that host path (issue 11.5: not the plugin-internal
// /var/lib/hostvol/volumes/NAME), given with HOSTVOL_STATE_SOURCE next to state.source.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BB_IMAGE, e2eSuite, inspectVolume, uniq, waitFor } from './harness';
import { MANAGED_PLUGIN, installManagedPlugin } from './lib/hostvol';
import { swarmInit, waitRunning } from './lib/swarm';

const s = e2eSuite({ hostvol: false });
const PLUGIN = MANAGED_PLUGIN;
const LOOP = 'trap "exit 0" TERM; while :; do sleep 0.2; done';
let stateDir: string;

beforeAll(async () => {
  stateDir = await installManagedPlugin(s.engine, 'sm');
  await swarmInit(s.engine);
}, 240_000);

describe('managed hostvol under Swarm', () => {
  s.scenario('right after dockerd starts, a service task is placed at once; its data is in state.source and inspect shows that host path', async () => {
    const [svc, v] = [uniq('ms'), uniq('msv')];
    await s.engine.restartDaemon();
    await s.docker(['service', 'create', '-d', '--no-resolve-image', '--name', svc, '--mount',
      `type=volume,source=${v},target=/d,volume-driver=${PLUGIN},volume-opt=uid=1000`,
      BB_IMAGE, 'sh', '-c', `echo from-task > /d/f; ${LOOP}`]);
    const ms = await waitRunning(s.engine, svc, 1, 15_000);
    console.log(`[swarm] managed, right after start: task running after ${ms} ms`);

    const onHost = path.join(stateDir, 'volumes', v);
    await waitFor('the task to write its volume', () => fs.existsSync(path.join(onHost, 'f')), 10_000);
    expect(fs.readFileSync(path.join(onHost, 'f'), 'utf8')).toBe('from-task\n');
    expect(fs.statSync(onHost).uid).toBe(1000);
    expect((await inspectVolume(s.engine, v)).Status.path).toBe(onHost);

    await s.docker(['service', 'rm', svc]);
    await waitFor(`volume rm ${v} after service rm`, async () => (await s.docker(['volume', 'rm', v], { allowFail: true })).code === 0, 30_000, 250);
    expect(fs.existsSync(onHost)).toBe(false);
  }, 90_000);
});
