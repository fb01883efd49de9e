// hostvol doctor and the `.<volume>.hostvol-*` directories an import or clone fills before swapping
// them in (src/archive/staging.ts): one left by a process that died mid-way is reported as the
// remains of an interrupted import and deleted by --fix; one an import is filling right now (it holds
// the directory's flock) is neither reported nor touched, and that import still completes.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { importArchive } from '../../src/archive/import';
import { useAdminSandbox, type Admin } from './admin-support';
import { tempDir } from './archive-tree';
import type { Sandbox } from './support';

let sb: Sandbox;
let admin: Admin;
useAdminSandbox((s, a) => ((sb = s), (admin = a)), { each: true });

const root = () => fs.realpathSync(sb.config.dataRoot);
const doctor = async (fix: boolean) => (await admin.call('POST', '/doctor', { fix })).body as { findings: Array<{ kind: string; subject: string; detail: string; fixed?: string }> };
const stagingOf = (v: string) => fs.readdirSync(root()).filter((e) => e.startsWith(`.${v}.hostvol-`));

test('a staging directory no import holds is reported as an interrupted import; --fix deletes it, and only it', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'ds-crashed' });
  fs.writeFileSync(path.join(root(), 'ds-crashed', 'kept'), 'as it was');
  const left = path.join(root(), '.ds-crashed.hostvol-0123456789ab');
  fs.mkdirSync(path.join(left, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(left, 'sub', 'partial'), Buffer.alloc(5000, 1));

  const finding = {
    kind: 'interrupted-import', subject: left,
    detail: 'a partial copy left by an import or clone into volume "ds-crashed" that was cut short (the volume is as it was); delete it',
  };
  expect((await doctor(false)).findings).toEqual([finding]);
  expect(fs.existsSync(left)).toBe(true); // looking changes nothing
  expect((await doctor(true)).findings).toEqual([{ ...finding, fixed: 'deleted: no import or clone holds it' }]);
  expect(fs.existsSync(left)).toBe(false);
  expect(fs.readFileSync(path.join(root(), 'ds-crashed', 'kept'), 'utf8')).toBe('as it was');
  expect((await doctor(false)).findings).toEqual([]);
}, 30_000);

test('the staging directory of an import in progress is left alone, and the import completes', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'ds-live' });
  const src = tempDir('ds-src');
  fs.writeFileSync(path.join(src, 'f'), Buffer.alloc(300_000, 7));
  const archive = execFileSync('tar', ['-C', src, '-cf', '-', '.'], { maxBuffer: 1 << 24 });
  const input = new PassThrough();
  const done = importArchive(path.join(root(), 'ds-live'), input, { what: 'volume "ds-live"' });
  input.write(archive.subarray(0, 100_000)); // the rest comes after doctor has run: the import waits for it
  for (let i = 0; stagingOf('ds-live').length === 0; i++) {
    if (i > 3000) throw new Error('the import made no staging directory');
    await new Promise((r) => setTimeout(r, 10));
  }
  const [staging] = stagingOf('ds-live');

  expect((await doctor(true)).findings).toEqual([]);
  expect(stagingOf('ds-live')).toEqual([staging]);

  input.end(archive.subarray(100_000));
  expect(await done).toMatchObject({ bytes: 300_000 });
  expect(fs.readFileSync(path.join(root(), 'ds-live', 'f')).equals(Buffer.alloc(300_000, 7))).toBe(true);
  expect(stagingOf('ds-live')).toEqual([]);
  fs.rmSync(src, { recursive: true });
}, 60_000);
