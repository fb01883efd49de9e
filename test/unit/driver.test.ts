// The volume lifecycle over the real socket: create (idempotent, rolled back on failure), options
// applied on disk, per-ID mount counting, Z single-writer, ro bind mounts, remove and onremove.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { destroy, sandbox, type Sandbox } from './support';

let sb: Sandbox;
beforeAll(async () => {
  sb = await sandbox();
});
afterAll(() => destroy(sb));

const create = (Name: string, Opts: Record<string, string> | null = null) => sb.call('/VolumeDriver.Create', { Name, Opts });
const mount = (Name: string, ID: string) => sb.call('/VolumeDriver.Mount', { Name, ID });
const unmount = (Name: string, ID: string) => sb.call('/VolumeDriver.Unmount', { Name, ID });
const remove = (Name: string) => sb.call('/VolumeDriver.Remove', { Name });
const status = async (Name: string) => (await sb.call('/VolumeDriver.Get', { Name })).Volume.Status;

describe('create', () => {
  test('makes <data-root>/<name> and records who made it', async () => {
    expect(await create('c1')).toEqual({});
    expect(fs.statSync(path.join(sb.config.dataRoot, 'c1')).isDirectory()).toBe(true);
    expect(await status('c1')).toMatchObject({ createdBy: 'hostvol', onRemove: 'delete', mounts: 0, readOnly: false });
  });

  test('is idempotent with the same options, however they are spelled', async () => {
    expect(await create('c2', { o: 'ro,z', mode: '750' })).toEqual({});
    expect(await create('c2', { ro: 'true', z: '', mode: '0750' })).toEqual({});
  });

  test('refuses the same name with other options, saying so', async () => {
    expect(await create('c3', { mode: '0750' })).toEqual({});
    expect((await create('c3', { mode: '0700' })).Err).toMatch(/volume "c3" already exists with options .*remove it first/);
  });

  test('applies uid, gid and mode to a directory it makes', async () => {
    await create('owned', { uid: '1000', gid: '1001', mode: '0750' });
    const st = fs.statSync(path.join(sb.config.dataRoot, 'owned'));
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1000, 1001, 0o750]);
    expect((await status('owned')).options).toEqual({ readOnly: false, uid: 1000, gid: 1001, mode: '0750' });
  });

  test('leaves an existing path as it is unless an option is given explicitly', async () => {
    const dir = path.join(sb.config.dataRoot, 'pre');
    fs.mkdirSync(dir, { mode: 0o711 });
    fs.chmodSync(dir, 0o711);
    await create('pre-a', { path: dir });
    expect(fs.statSync(dir).mode & 0o777).toBe(0o711);
    expect(await status('pre-a')).toMatchObject({ createdBy: 'existing', onRemove: 'keep' });
    await remove('pre-a');
    await create('pre-b', { path: dir, mode: '0700' });
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    await remove('pre-b');
  });

  test.each([
    ['path', { path: '/p1' }, { path: '/p2' }],
    ['mountpoint', { mountpoint: '/p1' }, { mountpoint: '/p2' }],
    ['uid', { uid: '1' }, { uid: '2' }],
    ['gid', { gid: '1' }, { gid: '2' }],
    ['mode', { mode: '0750' }, { mode: '0700' }],
    ['ro', { ro: '' }, { ro: 'false' }],
    ['rw', { rw: 'false' }, { rw: '' }],
    // Titles differ by more than case: jest's -t is case-insensitive, so each row can be run alone.
    ['z (shared label)', { z: '' }, { z: 'false' }],
    ['Z (private label, single writer)', { Z: '' }, { z: '' }],
    ['o', { o: 'ro' }, { o: 'rw' }],
    ['onremove', { onremove: 'keep' }, { onremove: 'delete' }],
  ])('a second Create that differs only in %s is refused', async (_, first, second) => {
    const option = Object.keys(first)[0];
    const name = `diff-${option === 'Z' ? 'bigz' : option}`;
    const at = (o: Record<string, string>) =>
      Object.fromEntries(Object.entries(o).map(([k, v]) => [k, k === 'path' || k === 'mountpoint' ? path.join(sb.config.dataRoot, `${name}${v.slice(2)}`) : v]));
    expect(await create(name, at(first))).toEqual({});
    expect((await create(name, at(second))).Err).toMatch(new RegExp(`volume "${name}" already exists with options`));
    expect(await create(name, at(first))).toEqual({});
  });

  test('the process umask does not narrow the mode of what hostvol makes', async () => {
    const old = process.umask(0o027);
    try {
      await create('umask', { path: path.join(sb.config.dataRoot, 'um-parent', 'umask') });
    } finally {
      process.umask(old);
    }
    expect(fs.statSync(path.join(sb.config.dataRoot, 'um-parent', 'umask')).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(sb.config.dataRoot, 'um-parent')).mode & 0o777).toBe(0o755);
  });

  test('every unknown option is named in one Err', async () => {
    expect((await create('typos', { sizee: '1', uidd: '2', ro: '' })).Err).toMatch(/unknown options "sizee", "uidd"; valid options are/);
  });

  test('refuses names that could escape or that Docker would not make', async () => {
    for (const Name of ['..', '.hidden', 'a/b', '../../etc', 'a\u0000b', 'x'.repeat(256), 'sp ace', 'ünï']) {
      expect((await create(Name)).Err).toMatch(/invalid volume name/);
    }
    expect(fs.readdirSync(sb.config.dataRoot)).not.toContain('..');
  });

  test('refuses a file where the directory should be, and leaves it alone', async () => {
    fs.writeFileSync(path.join(sb.config.dataRoot, 'afile'), 'data');
    expect((await create('afile')).Err).toMatch(/afile exists and is not a directory/);
    expect(fs.readFileSync(path.join(sb.config.dataRoot, 'afile'), 'utf8')).toBe('data');
  });

  test('rolls back completely when a step fails (chown of a path on a read-only bind)', async () => {
    const ro = path.join(sb.config.dataRoot, 'rofs');
    fs.mkdirSync(ro);
    require('node:child_process').execFileSync('mount', ['--bind', '-o', 'ro', ro, ro]);
    try {
      const reply = await create('rb', { path: path.join(ro, 'deep', 'dir') });
      expect(reply.Err).toMatch(/volume "rb"/);
      expect((await sb.call('/VolumeDriver.Get', { Name: 'rb' })).Err).toMatch(/does not exist/);
      expect(fs.readdirSync(ro)).toEqual([]);
    } finally {
      require('node:child_process').execFileSync('umount', [ro]);
    }
    // Nothing of the failed attempt is left to trip over: the same Create now simply works.
    expect(await create('rb', { path: path.join(ro, 'deep', 'dir') })).toEqual({});
    expect(fs.statSync(path.join(ro, 'deep', 'dir')).isDirectory()).toBe(true);
  });

  test('refuses a path that nests with another volume or holds the data root', async () => {
    expect(await create('outer')).toEqual({});
    expect((await create('nest', { path: path.join(sb.config.dataRoot, 'outer', 'sub') })).Err).toMatch(/nests with the directory of volume "outer"/);
    expect((await create('root', { path: sb.config.dataRoot })).Err).toMatch(/data root/);
  });
});

describe('mount and unmount count references per Mount ID', () => {
  test('Mount hands dockerd a bind of the directory in hostvol\'s own mount directory; Path and Get show the data directory', async () => {
    await create('m1');
    fs.writeFileSync(path.join(sb.config.dataRoot, 'm1', 'seed'), 's');
    const target = path.join(sb.config.stateDir, 'mounts', 'm1');
    expect(await mount('m1', 'id-a')).toEqual({ Mountpoint: target });
    expect(fs.readFileSync(path.join(target, 'seed'), 'utf8')).toBe('s');
    fs.writeFileSync(path.join(target, 'written'), 'w');
    expect(fs.readFileSync(path.join(sb.config.dataRoot, 'm1', 'written'), 'utf8')).toBe('w');
    expect(await sb.call('/VolumeDriver.Path', { Name: 'm1' })).toEqual({ Mountpoint: path.join(sb.config.dataRoot, 'm1') });
    expect((await sb.call('/VolumeDriver.Get', { Name: 'm1' })).Volume.Mountpoint).toBe(path.join(sb.config.dataRoot, 'm1'));
  });

  test('a second Mount of the same ID (docker cp) needs two Unmounts', async () => {
    await create('m2');
    await mount('m2', 'id-a');
    await mount('m2', 'id-a'); // docker cp: the same ID again
    await mount('m2', 'id-b');
    expect((await status('m2')).mounts).toBe(2);
    await unmount('m2', 'id-a');
    expect((await status('m2')).mounts).toBe(2);
    await unmount('m2', 'id-a');
    expect((await status('m2')).mounts).toBe(1);
    await unmount('m2', 'id-b');
    expect((await status('m2')).mounts).toBe(0);
  });

  test('Unmount of an unknown ID succeeds and changes nothing', async () => {
    await create('m3');
    expect(await unmount('m3', 'never-mounted')).toEqual({});
    expect((await status('m3')).mounts).toBe(0);
    // Nor does it touch an ID that is mounted.
    await mount('m3', 'id-a');
    expect(await unmount('m3', 'never-mounted')).toEqual({});
    expect((await status('m3')).mounts).toBe(1);
  });

  test('Mount of an unknown volume is an Err naming it', async () => {
    expect((await mount('ghost', 'x')).Err).toBe('volume "ghost" does not exist in hostvol');
  });

  test('Z volumes take one writer: a second ID is refused until the first is gone', async () => {
    await create('solo', { Z: '' });
    await mount('solo', 'first');
    expect(await mount('solo', 'first')).toHaveProperty('Mountpoint');
    expect((await mount('solo', 'second')).Err).toMatch(/volume "solo" is single-writer \(option Z\)/);
    await unmount('solo', 'first');
    await unmount('solo', 'first');
    expect(await mount('solo', 'second')).toHaveProperty('Mountpoint');
    expect(await status('solo')).toMatchObject({ label: 'Z', mounts: 1 });
  });

  test('ro volumes are served through a read-only bind mount that the last Unmount removes', async () => {
    await create('rov', { ro: '' });
    fs.writeFileSync(path.join(sb.config.dataRoot, 'rov', 'seed'), 'x');
    const { Mountpoint } = await mount('rov', 'r1');
    expect(Mountpoint).toBe(path.join(sb.config.stateDir, 'mounts', 'rov'));
    expect(fs.readFileSync(path.join(Mountpoint, 'seed'), 'utf8')).toBe('x');
    expect(() => fs.writeFileSync(path.join(Mountpoint, 'new'), 'y')).toThrow(/EROFS/);
    await mount('rov', 'r2');
    await unmount('rov', 'r1');
    expect(() => fs.readdirSync(Mountpoint)).not.toThrow();
    await unmount('rov', 'r2');
    expect(fs.existsSync(Mountpoint)).toBe(false);
    // Path answers what Get answers, mounted or not (it was "" before the first Mount).
    expect((await sb.call('/VolumeDriver.Path', { Name: 'rov' })).Mountpoint).toBe(path.join(sb.config.dataRoot, 'rov'));
  });

  test('Mount refuses when the directory vanished behind hostvol\'s back', async () => {
    await create('gone');
    fs.rmdirSync(path.join(sb.config.dataRoot, 'gone'));
    expect((await mount('gone', 'g')).Err).toMatch(/volume "gone": its directory .* no longer exists/);
  });
});

describe('remove and onremove', () => {
  test('a volume hostvol made is deleted with its data by default', async () => {
    await create('del');
    fs.mkdirSync(path.join(sb.config.dataRoot, 'del', 'a', 'b'), { recursive: true });
    expect(await remove('del')).toEqual({});
    expect(fs.existsSync(path.join(sb.config.dataRoot, 'del'))).toBe(false);
    expect((await sb.call('/VolumeDriver.Get', { Name: 'del' })).Err).toMatch(/does not exist/);
  });

  test('onremove=keep keeps the data and forgets the record', async () => {
    await create('kept', { onremove: 'keep' });
    fs.writeFileSync(path.join(sb.config.dataRoot, 'kept', 'f'), 'keep me');
    await remove('kept');
    expect(fs.readFileSync(path.join(sb.config.dataRoot, 'kept', 'f'), 'utf8')).toBe('keep me');
    expect((await sb.call('/VolumeDriver.List', {})).Volumes.map((v: { Name: string }) => v.Name)).not.toContain('kept');
  });

  test('a directory named with -o path= or mountpoint= is kept on remove, even one hostvol made (local-persist)', async () => {
    for (const key of ['path', 'mountpoint']) {
      const dir = path.join(sb.config.dataRoot, 'named', key);
      await create(`named-${key}`, { [key]: dir });
      fs.writeFileSync(path.join(dir, 'f'), 'survives');
      expect(await remove(`named-${key}`)).toEqual({});
      expect(fs.readFileSync(path.join(dir, 'f'), 'utf8')).toBe('survives');
    }
  });

  test('onremove=delete on a path hostvol made deletes it and the parents it made', async () => {
    const dir = path.join(sb.config.dataRoot, 'made-a', 'made-b', 'vol');
    await create('madedel', { path: dir, onremove: 'delete' });
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    expect(await remove('madedel')).toEqual({});
    expect(fs.existsSync(path.join(sb.config.dataRoot, 'made-a'))).toBe(false);
  });

  test('onremove=delete on an existing path deletes it', async () => {
    const dir = path.join(sb.config.dataRoot, 'existing-del');
    fs.mkdirSync(dir);
    await create('exdel', { path: dir, onremove: 'delete' });
    await remove('exdel');
    expect(fs.existsSync(dir)).toBe(false);
  });

  test('a symlink inside a volume is removed, its target is not followed', async () => {
    const outside = path.join(sb.dir, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'precious'), 'p');
    await create('sym');
    fs.symlinkSync(outside, path.join(sb.config.dataRoot, 'sym', 'link'));
    await remove('sym');
    expect(fs.readFileSync(path.join(outside, 'precious'), 'utf8')).toBe('p');
  });

  test('Remove of an unknown volume is an Err', async () => {
    expect((await remove('ghost')).Err).toMatch(/does not exist/);
  });
});

describe('a failed create on an existing path', () => {
  test('puts back the mode it changed before the step that failed', async () => {
    // A server whose last create step (the relabel) fails, after chmod has run.
    const failing = await sandbox({}, { labeler: { enabled: true, relabel: async () => { throw new Error('relabel refused'); } } });
    try {
      const dir = path.join(failing.config.dataRoot, 'restore-me');
      fs.mkdirSync(dir);
      fs.chmodSync(dir, 0o711);
      const reply = await failing.call('/VolumeDriver.Create', { Name: 'restore', Opts: { path: dir, mode: '0700', z: '' } });
      expect(reply.Err).toBe('volume "restore": create failed: relabel refused');
      expect(fs.statSync(dir).mode & 0o777).toBe(0o711);
      expect((await failing.call('/VolumeDriver.Get', { Name: 'restore' })).Err).toMatch(/does not exist/);
    } finally {
      await destroy(failing);
    }
  });
});

describe('labels at the first Mount', () => {
  test('the first Mount relabels the directory it then binds, later ones do not; a relabel that fails is a mount failure', async () => {
    const relabelled: string[] = [];
    let refuse = false;
    const labelling = await sandbox({}, {
      labeler: {
        enabled: true,
        relabel: async (dir) => {
          if (refuse) throw new Error('relabel refused');
          relabelled.push(dir.path);
        },
      },
    });
    try {
      const call = labelling.call;
      await call('/VolumeDriver.Create', { Name: 'lab', Opts: { z: '' } });
      relabelled.length = 0; // the Create's own relabel
      const { Mountpoint } = await call('/VolumeDriver.Mount', { Name: 'lab', ID: 'a' });
      await call('/VolumeDriver.Mount', { Name: 'lab', ID: 'b' });
      expect(relabelled).toEqual([path.join(labelling.config.dataRoot, 'lab')]);
      fs.writeFileSync(path.join(Mountpoint, 'through-bind'), 'x');
      expect(fs.existsSync(path.join(labelling.config.dataRoot, 'lab', 'through-bind'))).toBe(true);
      await call('/VolumeDriver.Unmount', { Name: 'lab', ID: 'a' });
      await call('/VolumeDriver.Unmount', { Name: 'lab', ID: 'b' });
      refuse = true;
      expect((await call('/VolumeDriver.Mount', { Name: 'lab', ID: 'c' })).Err).toBe('volume "lab": mount failed: relabel refused');
      expect(fs.existsSync(Mountpoint)).toBe(false);
    } finally {
      await destroy(labelling);
    }
  });
});

describe('List while a Create is in flight', () => {
  test('a List taken while a Create waits shows it once the Create is answered', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const slow = await sandbox({}, { labeler: { enabled: true, relabel: async () => (entered(), gate) } });
    try {
      const names = async () => (await slow.call('/VolumeDriver.List', {})).Volumes.map((v: { Name: string }) => v.Name);
      const creating = slow.call('/VolumeDriver.Create', { Name: 'inflight', Opts: { z: '' } });
      await inside;
      expect(await names()).not.toContain('inflight'); // not yet acknowledged: not listed
      release();
      expect(await creating).toEqual({});
      expect(await names()).toContain('inflight');
    } finally {
      await destroy(slow);
    }
  });
});
