// Issue 11: the managed plugin through a registry, with the README's blocks run verbatim. Published twice
// (two builds: same code, a different /.instance), installed under the stable name `hostvol`, its store
// moved with the README's settings, then upgraded to the second build while a container keeps using a
// volume. The upgrade resets the mount sources (dockerd 20.10); the README's `set` line restores them, and
// when it is left out hostvol refuses to serve the store it was started on, naming the set that fixes it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BB_IMAGE, IDLE, RUN, e2eSuite, run, uniq } from './harness';
import { inEngineNs, privateHostDirs, runReadmeBlock } from './lib/readme';
import { startRegistry, type Registry } from './lib/registry';

const s = e2eSuite({ hostvol: false });
let registry: Registry;
let undoHostDirs: () => Promise<void>;
let stateDir: string;
let pathsDir: string;
const V1 = '0.1.0';
const V2 = '0.2.0';
const timings: string[] = [];

const timed = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
  const t = Date.now();
  const r = await fn();
  timings.push(`${what} ${Date.now() - t} ms`);
  return r;
};
const inspect = async () => JSON.parse((await s.docker(['plugin', 'inspect', 'hostvol'])).stdout)[0];
const dirs = () => ({ 'state-dir': stateDir, 'paths-dir': pathsDir });

beforeAll(async () => {
  undoHostDirs = await privateHostDirs(s.engine);
  registry = await startRegistry(s.engine);
  stateDir = path.join(s.engine.base, 'big-state');
  pathsDir = path.join(s.engine.base, 'data-paths');
  fs.mkdirSync(stateDir);
  fs.mkdirSync(pathsDir);
  for (const version of [V1, V2]) {
    await timed(`publish ${version} (make plugin, push, rm)`, () => runReadmeBlock(s.engine, 'managed-publish', { registry: registry.address, version }));
  }
}, 600_000);


describe('managed plugin through a registry, as the README does it', () => {
  // Inside the describe block, so it runs before the harness's teardown (a top-level afterAll runs after it).
  afterAll(async () => {
    console.log(`[plugin-upgrade] ${timings.join('; ')}`);
    await s.docker(['plugin', 'rm', '-f', 'hostvol'], { allowFail: true });
    await undoHostDirs?.();
  });

  s.scenario('install under the alias hostvol; the settings block moves the store and the paths directory', async () => {
    await timed('install', () => runReadmeBlock(s.engine, 'managed-install', { registry: registry.address, version: V1 }));
    const p = await inspect();
    expect(p).toMatchObject({ Name: 'hostvol:latest', PluginReference: `${registry.address}/hostvol:${V1}`, Enabled: true });
    // The install block's volume lives in the default store; it goes before the store moves.
    await s.docker(['volume', 'rm', 'data']);
    await runReadmeBlock(s.engine, 'managed-settings', dirs());
    expect((await inspect()).Settings.Env).toEqual(expect.arrayContaining([`HOSTVOL_STATE_SOURCE=${stateDir}`, `HOSTVOL_HOST_PATHS=${pathsDir}`]));
    await s.docker(['volume', 'create', '-d', 'hostvol', 'rv']);
    expect(fs.existsSync(path.join(stateDir, 'volumes', 'rv'))).toBe(true);
  }, 300_000);

  s.scenario('upgrade to the second build while a container runs: volumes, data and settings kept; driver name unchanged', async () => {
    const pv = uniq('pv');
    await s.docker(['volume', 'create', '-d', 'hostvol', '-o', `path=${pathsDir}/${pv}`, pv]);
    await s.docker(['run', '-d', ...RUN, '--name', 'keeps', '-v', 'rv:/r', '-v', `${pv}:/p`, BB_IMAGE, ...IDLE]);
    await s.docker(['exec', 'keeps', 'sh', '-c', 'echo before > /r/f && echo before > /p/f']);
    const before = await inspect();

    await timed('upgrade block', () => runReadmeBlock(s.engine, 'managed-upgrade', { registry: registry.address, version: V2, ...dirs() }));

    const after = await inspect();
    expect(after).toMatchObject({ Id: before.Id, Name: 'hostvol:latest', PluginReference: `${registry.address}/hostvol:${V2}`, Enabled: true });
    expect(after.Settings.Env).toEqual(expect.arrayContaining([`HOSTVOL_STATE_SOURCE=${stateDir}`, `HOSTVOL_HOST_PATHS=${pathsDir}`]));
    // the container kept running on its mounts, and writes through them still reach the host directories
    await s.docker(['exec', 'keeps', 'sh', '-c', 'echo during >> /r/f && echo during >> /p/f']);
    expect(fs.readFileSync(path.join(stateDir, 'volumes', 'rv', 'f'), 'utf8')).toBe('before\nduring\n');
    expect(fs.readFileSync(path.join(pathsDir, pv, 'f'), 'utf8')).toBe('before\nduring\n');
    const rows = (await s.docker(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).stdout.split('\n');
    expect(rows).toEqual(expect.arrayContaining(['hostvol:latest rv', `hostvol:latest ${pv}`]));
    const read = await s.docker(['run', '--rm', ...RUN, '-v', 'rv:/r', '-v', `${pv}:/p`, BB_IMAGE, 'cat', '/r/f', '/p/f']);
    expect(read.stdout).toBe('before\nduring\nbefore\nduring\n');
    await s.docker(['rm', '-f', 'keeps']);
  }, 300_000);

  s.scenario('upgrade without the set line: hostvol finds the default store, refuses every call, and the set it names fixes it', async () => {
    await s.docker(['plugin', 'disable', '-f', 'hostvol']);
    await s.docker(['plugin', 'upgrade', '--grant-all-permissions', '--skip-remote-check', 'hostvol', `${registry.address}/hostvol:${V1}`]);
    // /var/lib/hostvol exists (the install block made it, and holds the store the plugin first served)
    await s.docker(['plugin', 'enable', 'hostvol']);
    const refused = await s.docker(['run', '--rm', ...RUN, '-v', 'rv:/r', BB_IMAGE, 'cat', '/r/f'], { allowFail: true });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/error while mounting volume .*: hostvol was started on a different store: its state mount \(\/var\/lib\/hostvol in the plugin\) holds another store/);
    const fix = /Restore it with: (docker plugin disable -f hostvol && docker plugin set hostvol state\.source=(\S+) && docker plugin enable hostvol)/.exec(refused.stderr);
    expect(fix?.[2]).toBe(stateDir);
    // A create meanwhile makes nothing in the store that is mounted (dockerd sees Get answer "exists",
    // which hostvol must answer so, and sends no Create: see src/plugin/refusal.ts).
    await s.docker(['volume', 'create', '-d', 'hostvol', 'not-now'], { allowFail: true });
    expect(fs.readdirSync(inEngineNs(s.engine, '/var/lib/hostvol/volumes'))).toEqual([]);
    // dockerd still knows rv as hostvol's (a failed Get would have made it forget the volume for good)
    expect((await s.docker(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).stdout.split('\n')).toContain('hostvol:latest rv');

    const ns = s.engine.nsenter(false);
    const fixed = await run(ns[0], [...ns.slice(1), 'sh', '-ec', fix![1]], { env: s.engine.env(), allowFail: true });
    expect(fixed).toMatchObject({ code: 0 });
    expect((await s.docker(['run', '--rm', ...RUN, '-v', 'rv:/r', BB_IMAGE, 'cat', '/r/f'])).stdout).toBe('before\nduring\n');
  }, 300_000);

  s.scenario('state.source set to an empty directory without HOSTVOL_STATE_SOURCE: refused, and nothing is created there', async () => {
    const empty = path.join(s.engine.base, 'empty-state');
    fs.mkdirSync(empty);
    await s.docker(['plugin', 'disable', '-f', 'hostvol']);
    await s.docker(['plugin', 'set', 'hostvol', `state.source=${empty}`]);
    await s.docker(['plugin', 'enable', 'hostvol']);
    const info = JSON.parse((await s.docker(['volume', 'inspect', 'rv'])).stdout)[0];
    expect(info).toMatchObject({ Driver: 'hostvol:latest', Name: 'rv' });
    expect(info.Status.refused).toMatch(new RegExp(`holds no store, but this plugin's volumes are in store [0-9a-f]{32} at host directory ${stateDir}`));
    expect(fs.readdirSync(empty)).toEqual([]);
    await s.docker(['plugin', 'disable', '-f', 'hostvol']);
    await s.docker(['plugin', 'set', 'hostvol', `state.source=${stateDir}`]);
    await s.docker(['plugin', 'enable', 'hostvol']);
    expect((await s.docker(['run', '--rm', ...RUN, '-v', 'rv:/r', BB_IMAGE, 'cat', '/r/f'])).stdout).toBe('before\nduring\n');
  }, 120_000);
});
