// Issue 11: the README's managed-plugin blocks for a host without a registry, run verbatim against a
// private engine: build and enable under the stable name `hostvol`, rebuild it as a new plugin under the
// same name (the volumes dockerd recorded for `hostvol:latest` stay usable), and uninstall (the data
// stays). Also checks that every marked block of the README is run by some test. The registry blocks are
// in plugin-upgrade.test.ts, the host-service block in readme-host-service.test.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BB_IMAGE, REPO, RUN, e2eSuite } from './harness';
import { inEngineNs, privateHostDirs, readmeBlocks, runReadmeBlock } from './lib/readme';

const s = e2eSuite({ hostvol: false });
let undoHostDirs: () => Promise<void>;
const timings: string[] = [];
/** /var/lib/hostvol and /srv/hostvol as the engine's namespace (and so dockerd and the plugin) sees them. */
const hostState = () => inEngineNs(s.engine, '/var/lib/hostvol');
const inspect = async () => JSON.parse((await s.docker(['plugin', 'inspect', 'hostvol'])).stdout)[0];
const bb = (args: string[]) => s.docker(['run', '--rm', ...RUN, ...args]);

beforeAll(async () => {
  undoHostDirs = await privateHostDirs(s.engine);
});


test('every marked README block is run by an e2e test', () => {
  const used = new Set<string>();
  for (const f of fs.readdirSync(__dirname).filter((n) => n.endsWith('.test.ts'))) {
    const src = fs.readFileSync(path.join(__dirname, f), 'utf8');
    for (const m of src.matchAll(/(?:runReadmeBlock\(s\.engine, |readmeBlock\()'([a-z-]+)'/g)) used.add(m[1]);
  }
  expect([...readmeBlocks().keys()].sort()).toEqual([...used].sort());
});

describe('managed plugin built on this host, as the README does it', () => {
  // Inside the describe block, so it runs before the harness's teardown (a top-level afterAll runs after it).
  afterAll(async () => {
    console.log(`[readme-install] ${timings.join('; ')}`);
    await s.docker(['plugin', 'rm', '-f', 'hostvol'], { allowFail: true });
    await undoHostDirs?.();
  });

  s.scenario('make plugin, make plugin-enable, volume create: the plugin is hostvol:latest and the data is on the host', async () => {
    const t = Date.now();
    await runReadmeBlock(s.engine, 'managed-build');
    timings.push(`managed-build block ${Date.now() - t} ms`);
    expect(await inspect()).toMatchObject({ Name: 'hostvol:latest', Enabled: true });
    await bb(['-v', 'data:/d', BB_IMAGE, 'sh', '-c', 'echo built > /d/f']);
    const onHost = path.join(hostState(), 'volumes', 'data');
    expect(fs.readFileSync(path.join(onHost, 'f'), 'utf8')).toBe('built\n');
    expect(fs.statSync(onHost).uid).toBe(1000);
  }, 300_000);

  s.scenario('rebuild: rm -f, make plugin, set, enable; a new plugin under the same name serves the old volumes', async () => {
    const before = await inspect();
    const instance = fs.readFileSync(path.join(REPO, 'plugin/rootfs/.instance'), 'utf8');
    const t = Date.now();
    await runReadmeBlock(s.engine, 'managed-rebuild', { 'state-dir': '/var/lib/hostvol', 'paths-dir': '/srv/hostvol' });
    timings.push(`managed-rebuild block ${Date.now() - t} ms`);
    const after = await inspect();
    expect(after).toMatchObject({ Name: 'hostvol:latest', Enabled: true });
    expect(after.Id).not.toBe(before.Id);
    expect(fs.readFileSync(path.join(REPO, 'plugin/rootfs/.instance'), 'utf8')).not.toBe(instance);
    expect(after.Settings.Env).toContain('HOSTVOL_STATE_SOURCE=/var/lib/hostvol');
    const rows = (await s.docker(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).stdout.split('\n');
    expect(rows).toContain('hostvol:latest data');
    expect((await bb(['-v', 'data:/d', BB_IMAGE, 'sh', '-c', 'cat /d/f; echo rebuilt >> /d/f'])).stdout).toBe('built\n');
    expect(fs.readFileSync(path.join(hostState(), 'volumes', 'data', 'f'), 'utf8')).toBe('built\nrebuilt\n');
  }, 300_000);

  s.scenario('uninstall: the plugin is gone, the store and the data stay', async () => {
    await runReadmeBlock(s.engine, 'managed-uninstall');
    expect((await s.docker(['plugin', 'ls', '-q'])).stdout).toBe('');
    expect(fs.readFileSync(path.join(hostState(), 'volumes', 'data', 'f'), 'utf8')).toBe('built\nrebuilt\n');
    expect(fs.existsSync(path.join(hostState(), 'hostvol.db'))).toBe(true);
    // dockerd no longer lists the volume, but has kept its record (the rebuild scenario showed it comes back)
    expect((await s.docker(['volume', 'ls', '-q'])).stdout).toBe('');
  }, 120_000);
});
