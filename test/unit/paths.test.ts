// Confinement: `-o path=` is judged by its real location, symlinks and ".." included, against the
// allowed paths; deletes never leave the volume directory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Confinement, realLocation } from '../../src/host/paths';
import { destroy, sandbox, type Sandbox } from './support';

// One daemon confined to <sandbox>/allowed; <sandbox>/outside is a place it must never touch.
let sb: Sandbox;
let allowed: string;
let outside: string;
beforeAll(async () => {
  sb = await sandbox();
  allowed = path.join(sb.dir, 'allowed');
  outside = path.join(sb.dir, 'outside');
  fs.mkdirSync(allowed);
  fs.mkdirSync(outside);
  await sb.stop();
  sb.config.allowPaths = [allowed];
  await sb.restart();
});
afterAll(() => destroy(sb));

/** A directory of this test's own outside the allowed paths, holding a file that must survive. */
const outsideFor = (name: string) => {
  const dir = path.join(outside, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'keep'), 'k');
  return dir;
};

const create = (Name: string, Opts: Record<string, string>) => sb.call('/VolumeDriver.Create', { Name, Opts });

describe('realLocation resolves like the kernel', () => {
  test('".." after a symlink goes to the parent of the target, not of the link', async () => {
    const out = outsideFor('dotdot');
    fs.mkdirSync(path.join(out, 'sub'));
    fs.symlinkSync(path.join(out, 'sub'), path.join(allowed, 'lnk'));
    expect(await realLocation(`${allowed}/lnk/../x`)).toBe(path.join(out, 'x'));
  });

  test('the part that does not exist yet is appended as mkdir -p would make it', async () => {
    expect(await realLocation(`${allowed}/new/a/../b`)).toBe(path.join(allowed, 'new', 'b'));
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
    const out = outsideFor('escape');
    fs.symlinkSync(out, path.join(allowed, 'escape'));
    expect((await create('esc', { path: `${allowed}/escape/data` })).Err).toMatch(/really .*outside/);
    expect(fs.existsSync(path.join(out, 'data'))).toBe(false);
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

  test('a sibling whose name starts with an allowed path is outside it (/srv/data2 is not in /srv/data)', async () => {
    fs.mkdirSync(`${allowed}2`);
    expect((await create('sibling', { path: `${allowed}2/x` })).Err).toMatch(/outside the allowed paths/);
    expect(fs.existsSync(`${allowed}2/x`)).toBe(false);
  });

  test('onremove=delete is refused on an allowed root itself', async () => {
    expect((await create('whole', { path: allowed, onremove: 'delete' })).Err).toMatch(/allowed root/);
  });
});

describe('a data root reached through a symlink still confines', () => {
  test('roots are judged by their real location', async () => {
    const link = path.join(sb.dir, 'rootlink');
    fs.symlinkSync(allowed, link);
    const c = await Confinement.create([link]);
    expect(c.roots).toEqual([allowed]);
    await expect(c.judge(`${link}/../outside`, 'path')).rejects.toThrow(/outside the allowed paths/);
    expect(await c.judge(`${link}/ok`, 'path')).toBe(`${allowed}/ok`);
  });

  test('the innermost root is the one a walk starts from', async () => {
    const c = await Confinement.create([allowed, path.join(allowed, 'apps')]);
    expect(c.rootOf(`${allowed}/apps/web`)).toBe(path.join(allowed, 'apps'));
    expect(c.rootOf(`${allowed}/other`)).toBe(allowed);
    expect(c.rootOf(outside)).toBeUndefined();
  });
});

describe('Remove deletes only what the volume owns', () => {
  test('a mount inside the volume stops the remove before anything is deleted', async () => {
    const out = outsideFor('withmount');
    expect(await create('withmount', { path: `${allowed}/withmount`, onremove: 'delete' })).toEqual({});
    const tree = path.join(allowed, 'withmount');
    fs.writeFileSync(path.join(tree, 'data'), 'd');
    fs.mkdirSync(path.join(tree, 'mnt'));
    require('node:child_process').execFileSync('mount', ['--bind', out, path.join(tree, 'mnt')]);
    try {
      const reply = await sb.call('/VolumeDriver.Remove', { Name: 'withmount' });
      expect(reply.Err).toMatch(/volume "withmount" was not removed: .*mnt is mounted inside it; unmount it first/);
      expect(fs.readFileSync(path.join(tree, 'data'), 'utf8')).toBe('d');
      expect(fs.existsSync(path.join(out, 'keep'))).toBe(true);
      // Nothing was deleted, so the volume is whole and usable again.
      expect((await sb.call('/VolumeDriver.Mount', { Name: 'withmount', ID: 'm1' })).Mountpoint).toBeTruthy();
      expect(await sb.call('/VolumeDriver.Unmount', { Name: 'withmount', ID: 'm1' })).toEqual({});
    } finally {
      require('node:child_process').execFileSync('umount', [path.join(tree, 'mnt')]);
    }
    expect(await sb.call('/VolumeDriver.Remove', { Name: 'withmount' })).toEqual({});
    expect(fs.existsSync(tree)).toBe(false);
  });

  test('a volume directory swapped for a symlink to outside is never followed by Remove', async () => {
    const out = outsideFor('swapped');
    expect(await create('swapped', { path: `${allowed}/swapped`, onremove: 'delete' })).toEqual({});
    fs.renameSync(path.join(allowed, 'swapped'), path.join(allowed, 'swapped.real'));
    fs.symlinkSync(out, path.join(allowed, 'swapped'));
    await sb.call('/VolumeDriver.Remove', { Name: 'swapped' });
    expect(fs.existsSync(path.join(out, 'keep'))).toBe(true);
    // The symlink in the volume's place is unlinked, never followed; the moved directory is no longer the volume's.
    expect(fs.existsSync(path.join(allowed, 'swapped.real'))).toBe(true);
    expect(fs.lstatSync(path.join(allowed, 'swapped'), { throwIfNoEntry: false })).toBeUndefined();
  });
});
