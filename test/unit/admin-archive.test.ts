// The archive routes of the admin API against a real daemon: export streams a volume, import fills
// another, clone and `-o from=` copy one; volumes in use and hostile archives are refused with Errs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { emptyEntry } from '../../src/archive/entry';
import { TRAILER, encodeEntry } from '../../src/archive/tar-encode';
import { adminOf, type Admin } from './admin-support';
import { expectSameTree, makeEveryKind, snapshot } from './archive-tree';
import { destroy, sandbox, type Sandbox } from './support';

jest.setTimeout(60_000);

let sb: Sandbox;
let admin: Admin;
beforeAll(async () => {
  sb = await sandbox({ allowPaths: [] });
  admin = adminOf(sb);
  await sb.call('/VolumeDriver.Create', { Name: 'src' });
  await makeEveryKind(dirOf('src'));
});
afterAll(async () => {
  await admin.close();
  await destroy(sb);
});

const dirOf = (name: string) => path.join(sb.config.dataRoot, name);

async function exported(name: string, query = ''): Promise<{ status: number; body: Buffer }> {
  const res = await admin.client.request('GET', `/volumes/${name}/export${query}`);
  return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
}

async function imported(name: string, archive: Buffer, query = ''): Promise<{ status: number; body: any }> {
  const res = await admin.client.request('POST', `/volumes/${name}/import${query}`, { body: Readable.from([archive]), headers: { 'content-type': 'application/octet-stream' } });
  return { status: res.statusCode, body: JSON.parse(await res.body.text()) };
}

test('an exported volume imported into another is the same tree, and the bytes are counted', async () => {
  for (const compress of ['none', 'zstd']) {
    const ex = await exported('src', `?compress=${compress}`);
    expect(ex.status).toBe(200);
    await sb.call('/VolumeDriver.Create', { Name: `copy-${compress}` });
    const im = await imported(`copy-${compress}`, ex.body);
    expect(im).toMatchObject({ status: 200, body: { volume: `copy-${compress}` } });
    expectSameTree(await snapshot(dirOf(`copy-${compress}`)), await snapshot(dirOf('src')));
  }
  const metrics = (await admin.client.request('GET', '/metrics').then((r) => r.body.text())).split('\n');
  expect(Number(metrics.find((l) => l.startsWith('hostvol_export_bytes_total '))?.split(' ')[1])).toBeGreaterThan(0);
  expect(Number(metrics.find((l) => l.startsWith('hostvol_import_bytes_total '))?.split(' ')[1])).toBeGreaterThan(0);
});

test('import into a volume with content is refused without force, and replaces it with force', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'full' });
  fs.writeFileSync(path.join(dirOf('full'), 'old'), 'x');
  const archive = Buffer.concat([encodeEntry({ ...emptyEntry(Buffer.from('new'), 'file') }), TRAILER]);
  expect(await imported('full', archive)).toMatchObject({ status: 409, body: { Err: expect.stringMatching(/volume "full" is not empty .*--force/) } });
  expect(fs.readdirSync(dirOf('full'))).toEqual(['old']);
  expect((await imported('full', archive, '?force=1')).status).toBe(200);
  expect(fs.readdirSync(dirOf('full'))).toEqual(['new']);
});

test('a hostile archive is a 400 naming the member; the volume is untouched', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'victim' });
  const evil = Buffer.concat([encodeEntry({ ...emptyEntry(Buffer.from('../../escape'), 'file') }), TRAILER]);
  // encodeEntry writes './../../escape': still a '..' component.
  const r = await imported('victim', evil);
  expect(r).toMatchObject({ status: 400, body: { Err: expect.stringMatching(/member ".*escape" has a '\.\.' component/) } });
  expect(fs.readdirSync(dirOf('victim'))).toEqual([]);
  expect(fs.existsSync(path.join(sb.config.dataRoot, '..', 'escape'))).toBe(false);
});

test('a mounted volume: export needs live=1, import is refused', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'busy' });
  await sb.call('/VolumeDriver.Mount', { Name: 'busy', ID: 'c1' });
  const refused = await admin.client.request('GET', '/volumes/busy/export');
  expect(refused.statusCode).toBe(409);
  expect(JSON.parse(await refused.body.text()).Err).toMatch(/volume "busy" is mounted by 1 container; export it with --pause .* or --live/);
  expect((await exported('busy', '?live=1')).status).toBe(200);
  const archive = (await exported('src')).body;
  expect((await imported('busy', archive)).body.Err).toMatch(/volume "busy" is mounted by 1 container\(s\); stop them before importing/);
  await sb.call('/VolumeDriver.Unmount', { Name: 'busy', ID: 'c1' });
});

test('-o from=SRC at Create copies SRC before the volume is ready; clone copies into an existing empty one', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'made-from', Opts: { from: 'src' } });
  expectSameTree(await snapshot(dirOf('made-from')), await snapshot(dirOf('src')));
  const bad = await sb.call('/VolumeDriver.Create', { Name: 'from-nothing', Opts: { from: 'no-such' } });
  expect(bad.Err).toMatch(/option from names "no-such", which is not a ready hostvol volume/);
  expect((await admin.call('GET', '/volumes/from-nothing')).status).toBe(404);
  await sb.call('/VolumeDriver.Create', { Name: 'clone-dst' });
  const c = await admin.call('POST', '/volumes/src/clone', { to: 'clone-dst' });
  expect(c).toMatchObject({ status: 200, body: { volume: 'src', to: 'clone-dst' } });
  expectSameTree(await snapshot(dirOf('clone-dst')), await snapshot(dirOf('src')));
});
