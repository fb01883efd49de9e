// hostvol's admin commands against a managed plugin: the CLI finds the plugin's admin socket from its
// name (--plugin: dockerd gives the plugin ID, the socket is /run/docker/plugins/<id>/admin.sock), and
// asks dockerd itself for what only dockerd knows, since the plugin cannot reach dockerd's socket.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expectSameTree, makeEveryKind, snapshot } from '../unit/archive-tree';
import { BB_IMAGE, CLI_JS, IDLE, RUN, e2eSuite, run, uniq } from './harness';
import { MANAGED_PLUGIN, installManagedPlugin } from './lib/hostvol';
import { inEngineNs } from './lib/readme';

const s = e2eSuite({ hostvol: false });
const PLUGIN = MANAGED_PLUGIN;
let stateDir: string;

beforeAll(async () => {
  stateDir = await installManagedPlugin(s.engine, 'hv');
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

  s.scenario('clone --plugin and -o from= copy a volume through dockerd; a running writer needs --pause; /metrics counts what dockerd asked', async () => {
    const v = uniq('mc');
    const [a, b] = [`${v}-a`, `${v}-b`];
    const dir = (name: string) => path.join(stateDir, 'volumes', name);
    await s.docker(['volume', 'create', '-d', PLUGIN, v]);
    await makeEveryKind(dir(v));
    await s.docker(['run', '-d', ...RUN, '--name', `${v}-w`, '-v', `${v}:/d`, BB_IMAGE, ...IDLE]);

    const refused = await hostvol('clone', v, a);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`volume "${v}" is mounted read-write by running container(s) ${v}-w; use --pause`);
    expect((await s.docker(['volume', 'ls', '-q'])).stdout.split('\n')).not.toContain(a);

    expect(await hostvol('clone', v, a, '--pause')).toMatchObject({ code: 0, stdout: '' });
    expect((await s.docker(['inspect', '-f', '{{.State.Status}}', `${v}-w`])).stdout.trim()).toBe('running');
    expect((await s.docker(['volume', 'inspect', '-f', '{{.Driver}}', a])).stdout.trim()).toBe(PLUGIN);
    await s.docker(['rm', '-f', `${v}-w`]);
    expectSameTree(await snapshot(dir(a)), await snapshot(dir(v)));
    await s.docker(['volume', 'create', '-d', PLUGIN, '-o', `from=${v}`, b]);
    expectSameTree(await snapshot(dir(b)), await snapshot(dir(v)));

    const id = (await s.docker(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN])).stdout.trim();
    // From the engine's mount namespace: the host's view of the path is too long for a socket address.
    const ns = s.engine.nsenter(false);
    const scraped = await run(ns[0], [...ns.slice(1), 'curl', '-s', '--unix-socket', `/run/docker/plugins/${id}/admin.sock`, 'http://hostvol/metrics'], { timeoutMs: 30_000 });
    expect(scraped.stdout).toMatch(/^hostvol_plugin_requests_total\{endpoint="\/VolumeDriver.Create",outcome="ok"\} [1-9]\d*$/m);
    expect(scraped.stdout).toMatch(/^hostvol_volumes\{state="ready"\} [1-9]\d*$/m);
    await s.docker(['volume', 'rm', v, a, b]);
  }, 180_000);

  s.scenario('export --plugin and import --create round trip through the plugin\'s admin socket; a running writer needs --pause', async () => {
    const v = uniq('mx');
    const copy = `${v}-copy`;
    const file = path.join(s.engine.base, `${v}.tar.zst`);
    await s.docker(['volume', 'create', '-d', PLUGIN, v]);
    await makeEveryKind(path.join(stateDir, 'volumes', v));
    await s.docker(['run', '-d', ...RUN, '--name', `${v}-w`, '-v', `${v}:/d`, BB_IMAGE, ...IDLE]);

    const refused = await hostvol('export', v, file, '--compress', 'zstd');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`volume "${v}" is mounted read-write by running container(s) ${v}-w; use --pause`);
    expect(fs.existsSync(file)).toBe(false);

    const since = Math.floor(Date.now() / 1000) - 1;
    expect(await hostvol('export', v, file, '--compress', 'zstd', '--pause')).toMatchObject({ code: 0, stdout: '' });
    const events = await s.docker(['events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', `container=${v}-w`, '--format', '{{.Action}}']);
    expect(events.stdout.split('\n').filter((x) => x === 'pause' || x === 'unpause')).toEqual(['pause', 'unpause']);
    expect((await s.docker(['inspect', '-f', '{{.State.Status}}', `${v}-w`])).stdout.trim()).toBe('running');

    const imported = await hostvol('import', copy, file, '--create');
    expect(imported).toMatchObject({ code: 0, stdout: '' });
    expect(imported.stderr).toMatch(new RegExp(`^imported \\d+ entries .* into volume ${copy}$`, 'm'));
    expect((await s.docker(['volume', 'inspect', '-f', '{{.Driver}}', copy])).stdout.trim()).toBe(PLUGIN);
    expectSameTree(await snapshot(path.join(stateDir, 'volumes', copy)), await snapshot(path.join(stateDir, 'volumes', v)));
    await s.docker(['rm', '-f', `${v}-w`]);
    await s.docker(['volume', 'rm', v, copy]);
  }, 180_000);
});
