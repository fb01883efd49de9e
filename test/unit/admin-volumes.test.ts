// GET /volumes (hostvol ls) and GET /volumes/:name (hostvol inspect) against a real daemon.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { useAdminSandbox, type Admin } from './admin-support';
import type { Sandbox } from './support';

let sb: Sandbox;
let admin: Admin;
useAdminSandbox((s, a) => ((sb = s), (admin = a)), { config: { allowPaths: [] } });

test('ls lists every volume by name with its host path, state, options and lease count', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'ls-b', Opts: { mode: '0750' } });
  await sb.call('/VolumeDriver.Create', { Name: 'ls-a' });
  await sb.call('/VolumeDriver.Mount', { Name: 'ls-a', ID: 'x1' });
  const { status, body } = await admin.call('GET', '/volumes');
  expect(status).toBe(200);
  const mine = body.filter((v: { name: string }) => v.name.startsWith('ls-'));
  expect(mine.map((v: { name: string }) => v.name)).toEqual(['ls-a', 'ls-b']);
  expect(mine[0]).toMatchObject({ hostPath: path.join(fs.realpathSync(sb.config.dataRoot), 'ls-a'), state: 'ready', leases: 1, nodes: [os.hostname()], createdBy: 'hostvol' });
  expect(mine[1]).toMatchObject({ options: { mode: 0o750, readOnly: false }, leases: 0, nodes: [] });
});

test('inspect shows leases with their generation, whether a mount is visible, and the size', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'in-a' });
  const dir = path.join(sb.config.dataRoot, 'in-a');
  fs.writeFileSync(path.join(dir, 'f'), Buffer.alloc(10_000, 1));
  fs.linkSync(path.join(dir, 'f'), path.join(dir, 'f-again')); // one inode, counted once
  await sb.call('/VolumeDriver.Mount', { Name: 'in-a', ID: 'mount-1' });
  const d = (await admin.call('GET', '/volumes/in-a')).body;
  expect(d).toMatchObject({ name: 'in-a', hostPath: fs.realpathSync(dir), state: 'ready' });
  expect(d.leases).toEqual([{ volume: 'in-a', node: os.hostname(), id: 'mount-1', count: 1, generation: 0, stale: false }]);
  expect(d.node).toBe(os.hostname());
  expect(d.othersUnknown).toBeUndefined();
  expect(d.size).toMatchObject({ apparentBytes: 10_000 + fs.statSync(dir).size, inodes: 2 });
  expect(d.size.bytes).toBeGreaterThanOrEqual(10_000);
  // What the host tells (null: no dockerd process visible, as in most unit runs: hostvol does not guess).
  const driver = await sb.daemon.ready;
  expect(d.mountVisible).toBe((await driver.deps.inUse(fs.realpathSync(dir))) ?? null);
});

test('inspect says whether removing the volume deletes its data', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'in-made' });
  await sb.call('/VolumeDriver.Create', { Name: 'in-kept', Opts: { onremove: 'keep' } });
  expect((await admin.call('GET', '/volumes/in-made')).body.deletesData).toBe(true);
  expect((await admin.call('GET', '/volumes/in-kept')).body.deletesData).toBe(false);
});

test('inspect of a volume whose directory is gone reports why its size is unknown', async () => {
  await sb.call('/VolumeDriver.Create', { Name: 'in-gone', Opts: { onremove: 'delete' } });
  fs.rmSync(path.join(sb.config.dataRoot, 'in-gone'), { recursive: true });
  const d = (await admin.call('GET', '/volumes/in-gone')).body;
  expect(d.size.error).toMatch(/volume "in-gone": its directory .* no longer exists/);
});

test('a volume still being created is not shown', async () => {
  const driver = await sb.daemon.ready;
  driver.volumes.set('in-creating', { ...driver.volumes.get('in-a')!, name: 'in-creating', state: 'creating', leases: new Map() });
  try {
    expect((await admin.call('GET', '/volumes/in-creating')).status).toBe(404);
    expect((await admin.call('GET', '/volumes')).body.map((v: { name: string }) => v.name)).not.toContain('in-creating');
  } finally {
    driver.volumes.delete('in-creating');
  }
});
