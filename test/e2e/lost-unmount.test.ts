// Lost Unmounts: when hostvol is down (legacy: stopped; managed: `docker plugin disable -f`, as in the
// README's upgrade steps) while a container is removed, dockerd's Unmount for that container fails and
// is never sent again (docker-volume-protocol.md, "Lost Unmount"). Once hostvol is back and no container
// uses the volume, `docker volume rm` must succeed without restarting dockerd or the host; while a
// container still has the volume mounted it must be refused, by dockerd and by hostvol itself.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  BB_IMAGE, DRIVER, IDLE, REPO, RUN, callSocket, calls, e2eSuite, isAlive, run, uniq, volumeRows,
} from './harness';

const s = e2eSuite();
/** stderr without the CLI's networking warning (dockerd runs with --bridge none and no IP forwarding). */
const errorsOf = (stderr: string) => stderr.split('\n').filter((l) => l && !l.startsWith('WARNING: IPv4 forwarding')).join('\n');
/** A docker command's outcome in one comparable value, so a failure shows dockerd's (and hostvol's) error. */
const outcome = async (args: string[]) => {
  const r = await s.docker(args, { allowFail: true });
  return { code: r.code, error: errorsOf(r.stderr) };
};
const SUCCESS = { code: 0, error: '' };
const startIdle = (name: string, ...vols: string[]) =>
  s.docker(['run', '-d', ...RUN, '--name', name, ...vols.flatMap((v) => ['-v', v]), BB_IMAGE, ...IDLE]);

/**
 * Runs `whileDown` with the legacy hostvol stopped (SIGTERM) and starts it again afterwards, also when
 * `whileDown` fails: a dead activated plugin would cost every later `docker volume ls` 15 s of retries.
 */
async function withHostvolStopped(whileDown: () => Promise<void>): Promise<void> {
  const { hv } = s;
  expect(await hv.stop()).toBe(true);
  try {
    await whileDown();
  } finally {
    if (!isAlive(hv.pid)) await hv.start();
  }
}

describe('legacy hostvol stopped while a container on its volume is removed', () => {
  s.scenario('the Unmount is lost; once hostvol is back, volume rm succeeds and deletes the data directory', async () => {
    const { hv, engine } = s;
    const v = uniq('lv');
    const c = `${v}-c`;
    await s.docker(['volume', 'create', '-d', DRIVER, v]);
    await startIdle(c, `${v}:/d`);
    expect(fs.existsSync(path.join(hv.dataRoot, v))).toBe(true);
    const mark = await hv.mark();

    await withHostvolStopped(async () => {
      await s.docker(['rm', '-f', c]); // dockerd retries the Unmount for ~15 s, logs a warning, removes anyway
    });
    // the premise: hostvol never heard of the container going away
    expect(calls(await hv.since(mark), 'Unmount', v)).toEqual([]);
    expect((await s.docker(['ps', '-aq'])).stdout).toBe('');

    expect(await outcome(['volume', 'rm', v])).toEqual(SUCCESS);
    expect(fs.existsSync(path.join(hv.dataRoot, v))).toBe(false);
    expect(await volumeRows(engine)).not.toContain(`${DRIVER} ${v}`);
  }, 120_000);

  s.scenario('a container that kept running is protected: dockerd and hostvol refuse Remove until it is gone too', async () => {
    const { hv } = s;
    const v = uniq('lv');
    const [gone, kept] = [`${v}-gone`, `${v}-kept`];
    await s.docker(['volume', 'create', '-d', DRIVER, v]);
    await startIdle(gone, `${v}:/d`);
    await startIdle(kept, `${v}:/d`);

    await withHostvolStopped(async () => {
      await s.docker(['rm', '-f', gone]); // its Unmount is lost
    });
    // `kept` still runs with the volume mounted and writes to it through the plugin's directory
    await s.docker(['exec', kept, 'sh', '-c', 'echo still-here > /d/f']);

    const byDocker = await outcome(['volume', 'rm', v]);
    expect(byDocker.code).not.toBe(0);
    expect(byDocker.error).toMatch(/volume is in use/);
    // dockerd guards only its own containers; hostvol must refuse on its own when asked directly
    const direct = await hv.call('/VolumeDriver.Remove', { Name: v });
    expect(direct.Err).toEqual(expect.stringContaining(`"${v}"`));
    expect(direct.Err).toMatch(/in use|mounted/);
    expect(fs.readFileSync(path.join(hv.dataRoot, v, 'f'), 'utf8')).toBe('still-here\n');

    await s.docker(['rm', '-f', kept]); // this Unmount reaches hostvol; the lost one never will
    expect(await outcome(['volume', 'rm', v])).toEqual(SUCCESS);
    expect(fs.existsSync(path.join(hv.dataRoot, v))).toBe(false);
  }, 120_000);

  s.scenario('-o ro and -o Z volumes: after the lost Unmount a new container can take the Z volume, and both can be removed', async () => {
    const { hv, engine } = s;
    const t = uniq('');
    const [vro, vz] = [`lvro${t}`, `lvz${t}`];
    await s.docker(['volume', 'create', '-d', DRIVER, '-o', 'ro', vro]);
    await s.docker(['volume', 'create', '-d', DRIVER, '-o', 'Z', vz]);
    // one container per volume: dockerd unmounts a container's volumes one after the other, 15 s each
    // while the plugin is down, but removes several containers in parallel
    await startIdle(`${vro}-c`, `${vro}:/r`);
    await startIdle(`${vz}-c`, `${vz}:/z`);
    const bind = path.join(hv.stateDir, 'mounts', vro);
    expect(engine.nsMounts(bind)).toEqual([bind]);

    await withHostvolStopped(async () => {
      await s.docker(['rm', '-f', `${vro}-c`, `${vz}-c`]);
    });

    // the single-writer volume is free again: its only holder is gone
    expect(await outcome(['run', '--rm', ...RUN, '-v', `${vz}:/z`, BB_IMAGE, 'sh', '-c', 'echo new-holder > /z/f'])).toEqual(SUCCESS);
    expect(fs.readFileSync(path.join(hv.dataRoot, vz, 'f'), 'utf8')).toBe('new-holder\n');

    expect(await outcome(['volume', 'rm', vro, vz])).toEqual(SUCCESS);
    expect(fs.existsSync(path.join(hv.dataRoot, vro))).toBe(false);
    expect(fs.existsSync(path.join(hv.dataRoot, vz))).toBe(false);
    // the read-only bind mount hostvol made for the ro volume went with it
    expect(engine.nsMounts(bind)).toEqual([]);
  }, 120_000);
});

describe('managed plugin disabled with -f while a container on its volume is removed (the README upgrade steps)', () => {
  const VERSION = require('../../package.json').version as string;
  const PLUGIN = `hostvol:${VERSION}`;
  let stateDir: string;
  /**
   * The plugin's socket, <run dir>/<64-hex id>/hostvol.sock, through a short symlink to its directory:
   * the full path is longer than the 107 bytes a Unix socket address may have (connect fails ENOENT).
   */
  const pluginSocket = async () => {
    const id = (await s.docker(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN])).stdout.trim();
    const link = path.join(s.engine.base, 'lm-sock');
    fs.rmSync(link, { force: true });
    fs.symlinkSync(path.join(s.engine.pluginDirs.run, id), link);
    return path.join(link, 'hostvol.sock');
  };

  // One plugin build for the file (as in managed.test.ts), only when a managed scenario runs.
  beforeAll(async () => {
    stateDir = path.join(s.engine.base, 'lm-state');
    const pathsDir = path.join(s.engine.base, 'lm-paths');
    fs.mkdirSync(stateDir);
    fs.mkdirSync(pathsDir);
    const built = await run('bash', ['plugin/build-rootfs.sh'], { cwd: REPO });
    if (built.code !== 0) throw new Error(`plugin/build-rootfs.sh failed:\n${built.stderr}`);
    await s.docker(['plugin', 'create', PLUGIN, path.join(REPO, 'plugin')], { timeoutMs: 120_000 });
    await s.docker(['plugin', 'set', PLUGIN, `state.source=${stateDir}`, `paths.source=${pathsDir}`, `HOSTVOL_HOST_PATHS=${pathsDir}`]);
    await s.docker(['plugin', 'enable', PLUGIN]);
  }, 240_000);

  afterAll(async () => {
    await s.docker(['plugin', 'rm', '-f', PLUGIN], { allowFail: true });
  });

  /** The README's upgrade steps around `whileDisabled`; enables again also when it fails. */
  async function withPluginDisabled(whileDisabled: () => Promise<void>): Promise<void> {
    await s.docker(['plugin', 'disable', '-f', PLUGIN]);
    let failed = true;
    try {
      await whileDisabled();
      failed = false;
    } finally {
      await s.docker(['plugin', 'enable', PLUGIN], { allowFail: failed }); // must not hide the first error
    }
  }

  s.scenario('the Unmount is lost; after enable, volume rm succeeds and deletes the data directory', async () => {
    const v = uniq('lv');
    const c = `${v}-c`;
    await s.docker(['volume', 'create', '-d', PLUGIN, v]);
    await startIdle(c, `${v}:/d`);
    await s.docker(['exec', c, 'sh', '-c', 'echo data > /d/f']);
    expect(fs.readFileSync(path.join(stateDir, 'volumes', v, 'f'), 'utf8')).toBe('data\n');

    await withPluginDisabled(async () => {
      await s.docker(['rm', '-f', c]);
    });
    expect((await s.docker(['ps', '-aq'])).stdout).toBe('');

    expect(await outcome(['volume', 'rm', v])).toEqual(SUCCESS);
    expect(fs.existsSync(path.join(stateDir, 'volumes', v))).toBe(false);
    expect(await volumeRows(s.engine)).not.toContain(`${PLUGIN} ${v}`);
  }, 120_000);

  s.scenario('a container running across disable -f/enable is protected: dockerd and the plugin refuse Remove until it is gone', async () => {
    const v = uniq('lv');
    const c = `${v}-c`;
    await s.docker(['volume', 'create', '-d', PLUGIN, v]);
    await startIdle(c, `${v}:/d`);
    await withPluginDisabled(async () => undefined);
    await s.docker(['exec', c, 'sh', '-c', 'echo still-here > /d/f']);

    const byDocker = await outcome(['volume', 'rm', v]);
    expect(byDocker.code).not.toBe(0);
    expect(byDocker.error).toMatch(/volume is in use/);
    const direct = await callSocket(await pluginSocket(), '/VolumeDriver.Remove', { Name: v });
    expect(direct.Err).toEqual(expect.stringContaining(`"${v}"`));
    expect(direct.Err).toMatch(/in use|mounted/);
    expect(fs.readFileSync(path.join(stateDir, 'volumes', v, 'f'), 'utf8')).toBe('still-here\n');

    await s.docker(['rm', '-f', c]);
    expect(await outcome(['volume', 'rm', v])).toEqual(SUCCESS);
    expect(fs.existsSync(path.join(stateDir, 'volumes', v))).toBe(false);
  }, 120_000);
});
