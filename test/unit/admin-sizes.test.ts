// GET /df (hostvol df): bytes and inodes per volume and in total, hard links counted once, nothing
// counted past a symlink or in another mount, and free space per file system.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { useAdminSandbox, type Admin } from './admin-support';
import type { Sandbox } from './support';

let sb: Sandbox;
let admin: Admin;
useAdminSandbox((s, a) => ((sb = s), (admin = a)));

const dirOf = (name: string) => path.join(sb.config.dataRoot, name);

test('df measures each volume and the total; hard links once, symlinks not followed', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'df-a' });
  await sb.call('/VolumeDriver.Create', { Name: 'df-b' });
  fs.mkdirSync(path.join(dirOf('df-a'), 'sub'));
  fs.writeFileSync(path.join(dirOf('df-a'), 'sub', 'big'), Buffer.alloc(100_000, 7));
  fs.linkSync(path.join(dirOf('df-a'), 'sub', 'big'), path.join(dirOf('df-a'), 'big-link'));
  fs.writeFileSync(path.join(dirOf('df-b'), 'small'), 'x');
  fs.symlinkSync(path.join(dirOf('df-a'), 'sub'), path.join(dirOf('df-b'), 'to-a'));
  const u = (await admin.call('GET', '/df?name=df-a&name=df-b')).body;
  expect(u.volumes.map((v: { name: string }) => v.name)).toEqual(['df-a', 'df-b']);
  const [a, b] = u.volumes;
  // df-a: its directory, sub, and one inode for big and big-link
  expect(a.inodes).toBe(3);
  expect(a.apparentBytes).toBe(100_000 + fs.lstatSync(dirOf('df-a')).size + fs.lstatSync(path.join(dirOf('df-a'), 'sub')).size);
  expect(a.bytes).toBeGreaterThanOrEqual(100_000);
  // df-b: its directory, small, and the symlink itself (not what it points at)
  expect(b.inodes).toBe(3);
  expect(b.apparentBytes).toBe(fs.lstatSync(dirOf('df-b')).size + 1 + fs.lstatSync(path.join(dirOf('df-b'), 'to-a')).size);
  expect(u.total).toEqual({ bytes: a.bytes + b.bytes, apparentBytes: a.apparentBytes + b.apparentBytes, inodes: 6 });
  // agrees with du on disk usage (du -B1 counts hard links once too)
  const du = Number(execFileSync('du', ['-s', '-B1', dirOf('df-a')]).toString().split('\t')[0]);
  expect(a.bytes).toBe(du);
});

test('df lists free space of the file system the volumes are on', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'df-c' });
  const u = (await admin.call('GET', '/df?name=df-c')).body;
  const st = fs.statfsSync(dirOf('df-c'));
  expect(u.filesystems).toHaveLength(1);
  const [f] = u.filesystems;
  expect(f).toMatchObject({ volumes: 1, totalBytes: st.blocks * st.bsize, totalInodes: st.files, dev: fs.statSync(dirOf('df-c')).dev });
  expect(f.freeBytes).toBeGreaterThan(0);
});

test('df does not count what is mounted inside a volume', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'df-m' });
  const inner = path.join(dirOf('df-m'), 'mnt');
  fs.mkdirSync(inner);
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', inner]);
  try {
    fs.writeFileSync(path.join(inner, 'hidden'), Buffer.alloc(50_000, 1));
    const v = (await admin.call('GET', '/df?name=df-m')).body.volumes[0];
    expect(v.apparentBytes).toBeLessThan(50_000);
  } finally {
    execFileSync('umount', [inner]);
  }
});

test('df names an unknown volume; a volume without its directory is listed with the reason', async () => {
  expect((await admin.call('GET', '/df?name=df-none')).status).toBe(404);
  await sb.call('/VolumeDriver.Create', { Name: 'df-gone' });
  fs.rmSync(dirOf('df-gone'), { recursive: true });
  const v = (await admin.call('GET', '/df?name=df-gone')).body.volumes[0];
  expect(v.error).toMatch(/volume "df-gone": its directory .* no longer exists/);
});
