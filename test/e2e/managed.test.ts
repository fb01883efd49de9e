// Issue 4: hostvol as a managed plugin, built by plugin/build-rootfs.sh from this machine's Node and
// installed with `docker plugin create/set/enable` on a private engine. Data must live on the host
// paths given by the plugin's mounts, never under the engine's plugins directory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BB_IMAGE, IDLE, REPO, RUN, e2eSuite, run, uniq, waitFor } from './harness';

const s = e2eSuite({ hostvol: false });
const VERSION = require('../../package.json').version as string;
const PLUGIN = `hostvol:${VERSION}`;
let stateDir: string;
let pathsDir: string;

const bb = (args: string[], opts = {}) => s.docker(['run', '--rm', ...RUN, ...args], opts);

beforeAll(async () => {
  stateDir = path.join(s.engine.base, 'hv-state');
  pathsDir = path.join(s.engine.base, 'hv-paths');
  fs.mkdirSync(stateDir);
  fs.mkdirSync(pathsDir);
  const built = await run('bash', ['plugin/build-rootfs.sh'], { cwd: REPO });
  if (built.code !== 0) throw new Error(`plugin/build-rootfs.sh failed:\n${built.stderr}`);
  const started = Date.now();
  await s.docker(['plugin', 'create', PLUGIN, path.join(REPO, 'plugin')], { timeoutMs: 120_000 });
  const created = Date.now();
  await s.docker(['plugin', 'set', PLUGIN, `state.source=${stateDir}`, `paths.source=${pathsDir}`, `HOSTVOL_HOST_PATHS=${pathsDir}`]);
  await s.docker(['plugin', 'enable', PLUGIN]);
  // Figures for the README: `docker plugin create` and `enable` on this machine.
  console.log(`[managed] ${built.stdout.trim()}; plugin create ${created - started} ms, set+enable ${Date.now() - created} ms`);
}, 240_000);

afterAll(async () => {
  // Remove before the harness tears the engine down, so volumes go while the plugin still answers.
  await s.docker(['plugin', 'rm', '-f', PLUGIN], { allowFail: true });
});

const pluginsDir = () => path.join(s.engine.base, 'root', 'plugins');
const findUnder = (dir: string, name: string): string[] => {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.name === name) out.push(p);
      if (e.isDirectory() && !e.isSymbolicLink()) walk(p);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
};

describe('managed plugin', () => {
  s.scenario('create with -o uid, write from one container, read from another; bytes are in the host state dir', async () => {
    const v = uniq('mv');
    await s.docker(['volume', 'create', '-d', PLUGIN, '-o', 'uid=1000', '-o', 'mode=0750', v]);
    await bb(['-v', `${v}:/d`, BB_IMAGE, 'sh', '-c', 'echo managed > /d/marker-file']);
    expect((await bb(['-v', `${v}:/d`, BB_IMAGE, 'cat', '/d/marker-file'])).stdout).toBe('managed\n');
    const onHost = path.join(stateDir, 'volumes', v);
    expect(fs.readFileSync(path.join(onHost, 'marker-file'), 'utf8')).toBe('managed\n');
    expect(fs.statSync(onHost).uid).toBe(1000);
    expect(fs.statSync(onHost).mode & 0o777).toBe(0o750);
    // Not stored under the engine's plugin directory (which `docker plugin rm` deletes).
    expect(findUnder(pluginsDir(), 'marker-file')).toEqual([]);
    const info = JSON.parse((await s.docker(['volume', 'inspect', v])).stdout)[0];
    expect(info).toMatchObject({ Driver: PLUGIN, Mountpoint: `/mnt/volumes/${v}` });
  });

  s.scenario('-o ro refuses writes from a container mounted read-write', async () => {
    const v = uniq('mro');
    await s.docker(['volume', 'create', '-d', PLUGIN, '-o', 'ro', v]);
    const w = await bb(['-v', `${v}:/d`, BB_IMAGE, 'touch', '/d/x'], { allowFail: true });
    expect(w.code).not.toBe(0);
    expect(w.stderr).toMatch(/Read-only file system/);
  });

  s.scenario('-o path= works for the host paths mount and is refused elsewhere', async () => {
    const v = uniq('mpath');
    const dir = path.join(pathsDir, v);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'from-host'), 'hello');
    await s.docker(['volume', 'create', '-d', PLUGIN, '-o', `path=${dir}`, v]);
    expect((await bb(['-v', `${v}:/d`, BB_IMAGE, 'sh', '-c', 'cat /d/from-host && echo back > /d/from-ctr'])).stdout).toBe('hello');
    expect(fs.readFileSync(path.join(dir, 'from-ctr'), 'utf8')).toBe('back\n');
    const info = JSON.parse((await s.docker(['volume', 'inspect', v])).stdout)[0];
    expect(info.Status.path).toBe(dir);

    const bad = await s.docker(['volume', 'create', '-d', PLUGIN, '-o', 'path=/etc', uniq('metc')], { allowFail: true });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/\/etc is outside the allowed paths/);
  });

  s.scenario('disable is refused while volumes exist; disable -f, set, enable keep volumes and data', async () => {
    const v = uniq('mkeep');
    await s.docker(['volume', 'create', '-d', PLUGIN, v]);
    await bb(['-v', `${v}:/d`, BB_IMAGE, 'sh', '-c', 'echo kept > /d/f']);
    const refused = await s.docker(['plugin', 'disable', PLUGIN], { allowFail: true });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/in use/);
    await s.docker(['plugin', 'disable', '-f', PLUGIN]);
    await s.docker(['plugin', 'set', PLUGIN, 'HOSTVOL_LOG_LEVEL=debug']);
    await s.docker(['plugin', 'enable', PLUGIN]);
    const env = JSON.parse((await s.docker(['plugin', 'inspect', PLUGIN])).stdout)[0].Settings.Env as string[];
    expect(env).toContain('HOSTVOL_LOG_LEVEL=debug');
    expect((await s.docker(['volume', 'ls', '-q'])).stdout.split('\n')).toContain(v);
    expect((await bb(['-v', `${v}:/d`, BB_IMAGE, 'cat', '/d/f'])).stdout).toBe('kept\n');
  });

  s.scenario('engine restart with the plugin enabled: volumes listed, a --restart=always container remounts', async () => {
    const v = uniq('mrs');
    const c = `${v}-c`;
    await s.docker(['volume', 'create', '-d', PLUGIN, v]);
    await s.docker(['run', '-d', ...RUN, '--restart=always', '--name', c, '-v', `${v}:/d`, BB_IMAGE, 'sh', '-c', 'echo up >> /d/log; trap "exit 0" TERM; while :; do sleep 0.2; done']);
    await s.engine.restartDaemon();
    expect((await s.docker(['volume', 'ls', '-q'])).stdout.split('\n')).toContain(v);
    await waitFor('the --restart=always container to run again', async () => (await s.docker(['inspect', '-f', '{{.State.Running}}', c])).stdout.trim() === 'true', 60_000);
    await waitFor('its second start to write the volume', () => fs.readFileSync(path.join(stateDir, 'volumes', v, 'log'), 'utf8') === 'up\nup\n', 30_000);
    expect((await s.docker(['exec', c, 'cat', '/d/log'])).stdout).toBe('up\nup\n');
    await s.docker(['rm', '-f', c]);
  }, 180_000);

  s.scenario('plugin rm -f leaves the host data untouched', async () => {
    const v = uniq('mrm');
    await s.docker(['volume', 'create', '-d', PLUGIN, v]);
    await bb(['-v', `${v}:/d`, BB_IMAGE, 'sh', '-c', 'echo survives > /d/f']);
    await s.docker(['plugin', 'rm', '-f', PLUGIN]);
    expect(fs.readFileSync(path.join(stateDir, 'volumes', v, 'f'), 'utf8')).toBe('survives\n');
    expect(fs.existsSync(path.join(stateDir, 'hostvol.db'))).toBe(true);
  });
});

void IDLE;
