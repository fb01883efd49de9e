// Confinement: `-o path=` is judged by its real location, symlinks and ".." included, against the
// allowed paths; deletes never leave the volume directory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Confinement, realLocation, removeTree } from '../../src/host/paths';
import { destroy, sandbox, type Sandbox } from './support';

let sb: Sandbox;
let allowed: string;
let outside: string;
beforeAll(async () => {
  sb = await sandbox();
  allowed = path.join(sb.dir, 'allowed');
  outside = path.join(sb.dir, 'outside');
  fs.mkdirSync(allowed);
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'keep'), 'k');
  await sb.stop();
  sb.config.allowPaths = [allowed];
  await sb.restart();
});
afterAll(() => destroy(sb));

const create = (Name: string, Opts: Record<string, string>) => sb.call('/VolumeDriver.Create', { Name, Opts });

describe('realLocation resolves like the kernel', () => {
  test('".." after a symlink goes to the parent of the target, not of the link', () => {
    fs.mkdirSync(path.join(outside, 'sub'), { recursive: true });
    fs.symlinkSync(path.join(outside, 'sub'), path.join(allowed, 'lnk'));
    expect(realLocation(`${allowed}/lnk/../x`)).toBe(path.join(outside, 'x'));
  });

  test('the part that does not exist yet is appended as mkdir -p would make it', () => {
    expect(realLocation(`${allowed}/new/a/../b`)).toBe(path.join(allowed, 'new', 'b'));
  });
});

describe('-o path= is confined to the allowed paths', () => {
  test('a path inside an allowed path is created and used', async () => {
    expect(await create('inside', { path: `${allowed}/apps/web` })).toEqual({});
    expect(fs.statSync(`${allowed}/apps/web`).isDirectory()).toBe(true);
  });

  test('a path outside is refused, naming the allowed paths and the fix', async () => {
    expect((await create('etc', { path: '/etc' })).Err).toMatch(/\/etc is outside the allowed paths .*--allow-path/);
  });

  test('a symlink that leads outside is refused by its real location', async () => {
    fs.symlinkSync(outside, path.join(allowed, 'escape'));
    expect((await create('esc', { path: `${allowed}/escape/data` })).Err).toMatch(/really .*outside/);
    expect(fs.existsSync(path.join(outside, 'data'))).toBe(false);
  });

  test('".." segments are resolved before judging', async () => {
    expect((await create('dots', { path: `${allowed}/../outside` })).Err).toMatch(/outside the allowed paths/);
    expect(await create('dots2', { path: `${allowed}/x/../dots2` })).toEqual({});
    expect((await sb.call('/VolumeDriver.Get', { Name: 'dots2' })).Volume.Status.path).toBe(`${allowed}/dots2`);
  });

  test('a file at the path is a clear Err', async () => {
    fs.writeFileSync(path.join(allowed, 'plainfile'), '');
    expect((await create('file', { path: `${allowed}/plainfile` })).Err).toMatch(/is not a directory/);
    expect((await create('file2', { path: `${allowed}/plainfile/below` })).Err).toMatch(/is not a directory/);
  });

  test('onremove=delete is refused on an allowed root itself', async () => {
    expect((await create('whole', { path: allowed, onremove: 'delete' })).Err).toMatch(/allowed root/);
  });
});

describe('a data root reached through a symlink still confines', () => {
  test('roots are judged by their real location', () => {
    const link = path.join(sb.dir, 'rootlink');
    fs.symlinkSync(allowed, link);
    const c = new Confinement([link]);
    expect(c.roots).toEqual([allowed]);
    expect(() => c.judge(`${link}/../outside`, 'path')).toThrow(/outside the allowed paths/);
    expect(c.judge(`${link}/ok`, 'path')).toBe(`${allowed}/ok`);
  });
});

describe('removeTree', () => {
  test('refuses to delete a root or anything outside the roots', async () => {
    const c = new Confinement([allowed]);
    await expect(removeTree(allowed, c)).rejects.toThrow(/refusing to delete/);
    await expect(removeTree(outside, c)).rejects.toThrow(/refusing to delete/);
    expect(fs.existsSync(path.join(outside, 'keep'))).toBe(true);
  });

  test('refuses a directory reached through a symlink', async () => {
    const c = new Confinement([allowed, outside]);
    fs.mkdirSync(path.join(outside, 'target'));
    fs.symlinkSync(path.join(outside, 'target'), path.join(allowed, 'via'));
    await expect(removeTree(path.join(allowed, 'via'), c)).rejects.toThrow(/refusing to delete/);
    expect(fs.existsSync(path.join(outside, 'target'))).toBe(true);
  });

  test('stops at a mount point inside the tree', async () => {
    const c = new Confinement([allowed]);
    const tree = path.join(allowed, 'withmount');
    fs.mkdirSync(path.join(tree, 'mnt'), { recursive: true });
    require('node:child_process').execFileSync('mount', ['--bind', outside, path.join(tree, 'mnt')]);
    try {
      await expect(removeTree(tree, c)).rejects.toThrow(/mnt is mounted inside it; unmount it first/);
      expect(fs.existsSync(path.join(outside, 'keep'))).toBe(true);
    } finally {
      require('node:child_process').execFileSync('umount', [path.join(tree, 'mnt')]);
    }
  });
});
