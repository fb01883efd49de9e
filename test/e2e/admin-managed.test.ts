// hostvol's admin commands against a managed plugin: the CLI finds the plugin's admin socket from its
// name (--plugin: dockerd gives the plugin ID, the socket is /run/docker/plugins/<id>/admin.sock), and
// asks dockerd itself for what only dockerd knows, since the plugin cannot reach dockerd's socket.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BB_IMAGE, CLI_JS, IDLE, REPO, RUN, e2eSuite, run, uniq } from './harness';
import { inEngineNs } from './lib/readme';

const s = e2eSuite({ hostvol: false });
const VERSION = require('../../package.json').version as string;
const PLUGIN = `hostvol:${VERSION}`;
let stateDir: string;

beforeAll(async () => {
  stateDir = path.join(s.engine.base, 'hv-state');
  const pathsDir = path.join(s.engine.base, 'hv-paths');
  fs.mkdirSync(stateDir);
  fs.mkdirSync(pathsDir);
  const built = await run('bash', ['plugin/build-rootfs.sh'], { cwd: REPO });
  if (built.code !== 0) throw new Error(`plugin/build-rootfs.sh failed:\n${built.stderr}`);
  await s.docker(['plugin', 'create', PLUGIN, path.join(REPO, 'plugin')], { timeoutMs: 120_000 });
  await s.docker(['plugin', 'set', PLUGIN, `state.source=${stateDir}`, `HOSTVOL_STATE_SOURCE=${stateDir}`, `paths.source=${pathsDir}`, `HOSTVOL_HOST_PATHS=${pathsDir}`]);
  await s.docker(['plugin', 'enable', PLUGIN]);
}, 240_000);

afterAll(async () => {
  await s.docker(['plugin', 'rm', '-f', PLUGIN], { allowFail: true });
});

/** `hostvol ARGS --plugin NAME` on the host (the engine's mount namespace, where dockerd put the plugin's sockets). */
const hostvol = (...args: string[]) => {
  const ns = s.engine.nsenter(false);
  return run(ns[0], [...ns.slice(1), process.execPath, CLI_JS, ...args, '--plugin', PLUGIN], { env: s.engine.env(), allowFail: true, timeoutMs: 60_000 });
};
const json = async (...args: string[]) => {
  const r = await hostvol(...args, '--format', 'json');
  if (r.code !== 0) throw new Error(`hostvol ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout);
};

describe('managed plugin', () => {
  s.scenario('the admin socket is beside the plugin socket in /run/docker/plugins/<id>/, root only', async () => {
    const id = (await s.docker(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN])).stdout.trim();
    const sock = inEngineNs(s.engine, `/run/docker/plugins/${id}/admin.sock`);
    expect(fs.lstatSync(sock).isSocket()).toBe(true);
    expect(fs.lstatSync(sock).mode & 0o777).toBe(0o600);
    expect(fs.existsSync(inEngineNs(s.engine, `/run/docker/plugins/${id}/hostvol.sock`))).toBe(true);
  });

  s.scenario('ls, inspect with containers from dockerd, df', async () => {
    const v = uniq('ma');
    await s.docker(['volume', 'create', '-d', PLUGIN, v]);
    await s.docker(['run', '-d', ...RUN, '--name', `${v}-c`, '-v', `${v}:/d`, BB_IMAGE, ...IDLE]);
    await s.docker(['exec', `${v}-c`, 'sh', '-c', 'head -c 30000 /dev/zero > /d/f']);
    expect((await json('ls')).find((x: any) => x.name === v)).toMatchObject({ hostPath: path.join(stateDir, 'volumes', v), leases: 1 });
    const [d] = await json('inspect', v);
    expect(d.containers).toEqual([expect.objectContaining({ name: `${v}-c`, state: 'running', rw: true, destination: '/d' })]);
    expect(d.leases).toHaveLength(1);
    expect((await json('df', v)).volumes[0].apparentBytes).toBeGreaterThanOrEqual(30_000);
    await s.docker(['rm', '-f', `${v}-c`]);
    await s.docker(['volume', 'rm', v]);
  }, 120_000);

  s.scenario('prune removes through dockerd the dangling volumes of this plugin', async () => {
    const scope = `scope=${uniq('mp')}`;
    const anon = (await s.docker(['volume', 'create', '-d', PLUGIN, '--label', scope])).stdout.trim();
    const named = uniq('mpn');
    await s.docker(['volume', 'create', '-d', PLUGIN, '--label', scope, named]);
    expect((await json('prune', '--filter', `label=${scope}`)).volumes.map((p: any) => p.name)).toEqual([anon]);
    expect((await json('prune', '--all', '--filter', `label=${scope}`)).volumes.map((p: any) => p.name)).toEqual([named]);
    expect((await s.docker(['volume', 'ls', '-q'])).stdout).not.toMatch(new RegExp(`${anon}|${named}`));
  }, 120_000);

  s.scenario('leases while a container runs and after; doctor finds and removes an empty stray directory', async () => {
    const v = uniq('ml');
    await s.docker(['volume', 'create', '-d', PLUGIN, v]);
    await s.docker(['run', '-d', ...RUN, '--name', `${v}-c`, '-v', `${v}:/d`, BB_IMAGE, ...IDLE]);
    const [l] = await json('leases', v);
    expect(l).toMatchObject({ volume: v, generation: 0, leases: [expect.objectContaining({ count: 1, stale: false })] });
    expect((await hostvol('leases', v)).stdout).toMatch(new RegExp(`^${v}\\s+${l.leases[0].node}\\s+${l.leases[0].id}\\s+1\\s+0\\s+no\\s`, 'm'));
    // dockerd's word on its running container keeps the lease, whatever the plugin's view of the mount tables
    const refused = await hostvol('release', v, '--id', l.leases[0].id);
    expect(refused.stderr).toBe(`hostvol: volume "${v}": not released: dockerd says ${v}-c (running) uses it; stop the container first, or pass --force if you know the lease is not its\n`);
    await hostvol('doctor', '--fix');
    expect((await json('leases', v))[0].leases).toHaveLength(1);
    await s.docker(['rm', '-f', `${v}-c`]);
    expect((await json('leases', v))[0].leases).toEqual([]);

    fs.mkdirSync(path.join(stateDir, 'volumes', `${v}-stray`));
    const found = await hostvol('doctor');
    expect(found.code).toBe(2);
    expect(found.stdout).toMatch(new RegExp(`^orphan-directory\\s+/var/lib/hostvol/volumes/${v}-stray\\s`, 'm'));
    const fixed = await hostvol('doctor', '--fix');
    expect(fixed.stdout).toMatch(/fixed: removed: it was empty/);
    expect(fs.existsSync(path.join(stateDir, 'volumes', `${v}-stray`))).toBe(false);
    await s.docker(['volume', 'rm', v]);
  }, 120_000);
});
