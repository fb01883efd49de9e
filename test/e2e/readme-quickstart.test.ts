// The README's quick-start block, run verbatim against a private engine with hostvol as a legacy plugin
// started with no flags at all: the default socket /run/docker/plugins/hostvol.sock and the default data
// root /var/lib/hostvol/volumes, which exist only on the private overlay privateHostDirs() gives the
// engine's namespace. The block runs one line at a time, in order and unchanged, so that what each
// line's comment (and the sentence above the block) claims is checked before the next line runs.
// Setup, not part of the block: the harness's busybox image is tagged `busybox`, the name the block
// uses (the engine has no registry to pull from).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BB_IMAGE, CLI_JS, e2eSuite } from './harness';
import { blockCommands, inEngineNs, privateHostDirs, readmeBlock, runReadmeScript, serveInEngine } from './lib/readme';

const s = e2eSuite({ hostvol: false });
const DIR = '/var/lib/hostvol/volumes/web-data';
let undoHostDirs: () => Promise<void>;

beforeAll(async () => {
  undoHostDirs = await privateHostDirs(s.engine);
  await s.docker(['tag', BB_IMAGE, 'busybox']);
  // `hostvol serve` with no flags and no HOSTVOL_* settings from the test's environment
  await serveInEngine(s.engine, [process.execPath, CLI_JS, 'serve'], { PATH: process.env.PATH }, 'quickstart-hostvol.log');
});

describe('quick start, as the README runs it', () => {
  // Inside the describe block, so it runs before the harness's teardown (a top-level afterAll runs after it).
  afterAll(async () => {
    await s.docker(['volume', 'rm', '-f', 'web-data'], { allowFail: true });
    await undoHostDirs?.();
  });

  s.scenario('create, run, inspect, rm: the data is in /var/lib/hostvol/volumes/web-data until rm deletes it', async () => {
    const lines = readmeBlock('quickstart').split('\n');
    // the checks below are about these commands; a changed block must change them too
    expect(blockCommands(lines.join('\n'))).toEqual([
      'docker volume create -d hostvol -o uid=1000 -o mode=0750 web-data',
      "docker run --rm -v web-data:/data busybox sh -c 'echo hi > /data/f'",
      'docker volume inspect web-data',
      'docker volume rm web-data',
    ]);
    const [create, write, inspect, rm] = lines;
    const onHost = inEngineNs(s.engine, DIR);

    await runReadmeScript(s.engine, 'quickstart line 1', create);
    expect(fs.statSync(onHost)).toMatchObject({ uid: 1000 });
    expect(fs.statSync(onHost).mode & 0o7777).toBe(0o750);

    await runReadmeScript(s.engine, 'quickstart line 2', write);
    expect(fs.readFileSync(path.join(onHost, 'f'), 'utf8')).toBe('hi\n');

    const shown = JSON.parse((await runReadmeScript(s.engine, 'quickstart line 3', inspect)).stdout)[0];
    expect(shown).toMatchObject({ Name: 'web-data', Driver: 'hostvol', Mountpoint: DIR });
    expect(shown.Status).toMatchObject({
      path: DIR,
      options: { uid: 1000, mode: '0750', readOnly: false },
      mounts: 0, // the --rm container is gone and has unmounted it
      readOnly: false,
      label: '',
      createdBy: 'hostvol',
    });

    await runReadmeScript(s.engine, 'quickstart line 4', rm);
    expect(fs.existsSync(onHost)).toBe(false);
    expect(fs.readdirSync(inEngineNs(s.engine, '/var/lib/hostvol/volumes'))).toEqual([]);
    expect((await s.docker(['volume', 'ls', '-q'])).stdout).toBe('');
  }, 120_000);
});
