// SELinux relabel for z/Z: the container file label lands in security.selinux of every entry of the
// volume, symlinks are labelled but not followed, and with labels off nothing is written.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CONTAINER_FILE_LABEL, createLabeler } from '../../src/host/labels';
import { openBeneath } from '../../src/host/tree';
import { destroy, sandbox, type Sandbox } from './support';

const label = (p: string): string | null => {
  try {
    return execFileSync('getfattr', ['-h', '--only-values', '-n', 'security.selinux', p], { stdio: 'pipe' }).toString().replace(/\0$/, '');
  } catch {
    return null;
  }
};

let sb: Sandbox;
beforeAll(async () => {
  sb = await sandbox({ selinux: 'on' });
});
afterAll(() => destroy(sb));

test('auto writes labels only where SELinux is present', () => {
  expect(createLabeler('auto', path.join(sb.dir, 'no-selinuxfs')).enabled).toBe(false);
  expect(createLabeler('auto', sb.dir).enabled).toBe(true);
  expect(createLabeler('off', sb.dir).enabled).toBe(false);
  expect(createLabeler('on', '/nonexistent').enabled).toBe(true);
});

test('relabel labels every entry, and a symlink itself rather than its target', async () => {
  const dir = path.join(sb.dir, 'tree');
  const outside = path.join(sb.dir, 'outside');
  fs.mkdirSync(outside);
  fs.mkdirSync(path.join(dir, 'a', 'b'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'a', 'b', 'f'), '');
  fs.symlinkSync(outside, path.join(dir, 'out'));
  const open = await openBeneath(sb.dir, 'tree');
  await createLabeler('on').relabel(open).finally(() => open.close());
  for (const p of ['', 'a', 'a/b', 'a/b/f']) expect(label(path.join(dir, p))).toBe(CONTAINER_FILE_LABEL);
  expect(label(outside)).toBeNull();
});

test('a volume created with z is labelled on disk and shows label z', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'lz', Opts: { z: '' } });
  expect(label(path.join(sb.config.dataRoot, 'lz'))).toBe(CONTAINER_FILE_LABEL);
  expect((await sb.call('/VolumeDriver.Get', { Name: 'lz' })).Volume.Status.label).toBe('z');
});

test('the first Mount relabels files added since create', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'lm', Opts: { o: 'Z' } });
  const added = path.join(sb.config.dataRoot, 'lm', 'added-later');
  fs.writeFileSync(added, '');
  expect(label(added)).toBeNull();
  await sb.call('/VolumeDriver.Mount', { Name: 'lm', ID: 'm' });
  expect(label(added)).toBe(CONTAINER_FILE_LABEL);
});

test('with labels off, z is recorded but nothing is written', async () => {
  // A daemon of its own: the file's shared one keeps labels on for the tests above.
  const off = await sandbox({ selinux: 'off' });
  try {
    await off.call('/VolumeDriver.Create', { Name: 'loff', Opts: { z: '' } });
    expect(label(path.join(off.config.dataRoot, 'loff'))).toBeNull();
    expect((await off.call('/VolumeDriver.Get', { Name: 'loff' })).Volume.Status.label).toBe('z');
  } finally {
    await destroy(off);
  }
});
