// DRAFT (power-cut group): hostvol's state dir and data root live on a lazyfs mount; after every
// acknowledged reply the power may go out (SIGKILL hostvol, then cut: only what was fsynced stays,
// see lib/powercut/lazyfs.py). A reply is a promise to dockerd: after the cut and a restart, every
// volume whose Create was acknowledged must be listed with its directory, every acknowledged Remove
// must stay removed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isOk } from './lib/client';
import { PowerCut, powercutToolsMissing } from './lib/powercut';
import { Sandbox } from './lib/sandbox';
import { Serve, requireBuild, type ServeConfig } from './lib/serve';

jest.setTimeout(180_000);
const missing = powercutToolsMissing();
const testCut = missing ? test.skip : test;
if (missing) console.warn(`power-cut tests skipped: ${missing}`);

let sb: Sandbox;
let pc: PowerCut;
let cfg: ServeConfig;

beforeAll(async () => {
  requireBuild();
  sb = new Sandbox('powercut');
  const backing = sb.dir('backing');
  fs.mkdirSync(path.join(backing, 'data'));
  fs.mkdirSync(path.join(backing, 'state'));
  const disk = sb.dir('disk');
  if (!missing) pc = await PowerCut.mount(backing, disk);
  cfg = {
    socket: sb.path('run', 'hostvol.sock'), // outside the disk: a socket is no data
    dataRoot: path.join(disk, 'data'),
    stateDir: path.join(disk, 'state'),
    bootIdFile: sb.bootId(),
    logFile: sb.path('hostvol.log'),
  };
});

afterAll(async () => {
  await pc?.unmount();
  sb?.cleanup();
});

/** Names listed by a freshly started hostvol, each with whether its directory (data root/name) exists. */
async function listed(serve: Serve): Promise<Record<string, boolean>> {
  const r = await serve.client.post('/VolumeDriver.List', {});
  expect(isOk(r)).toBe(true);
  const names = (r.json.Volumes as { Name: string }[]).map((v) => v.Name).sort();
  return Object.fromEntries(names.map((n) => [n, fs.existsSync(path.join(cfg.dataRoot, n))]));
}

testCut('acknowledged Create and Remove survive a power cut right after the reply', async () => {
  const model = new Set<string>();
  let n = 0;
  for (let round = 0; round < 4; round++) {
    const serve = await Serve.start(cfg);
    for (let i = 0; i < 3; i++) {
      const name = `v${n++}`;
      const r = await serve.client.post('/VolumeDriver.Create', { Name: name, Opts: {} });
      expect([name, isOk(r) ? 'ok' : r.text]).toEqual([name, 'ok']);
      model.add(name);
    }
    const victim = [...model][0];
    const r = await serve.client.post('/VolumeDriver.Remove', { Name: victim });
    expect([victim, isOk(r) ? 'ok' : r.text]).toEqual([victim, 'ok']);
    model.delete(victim);

    await serve.kill('SIGKILL'); // the process dies with the power
    const cut = await pc.cut();
    const again = await Serve.start(cfg);
    const seen = await listed(again);
    await again.kill('SIGKILL');
    const expected = Object.fromEntries([...model].sort().map((v) => [v, true]));
    expect({ round, volumes: seen }).toEqual({ round, volumes: expected });
    expect(cut.fsyncs).toBeGreaterThan(0);
  }
});
