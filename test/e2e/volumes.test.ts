// Issue 3, scenarios 1-4, 8, 11, 12: the life of a hostvol volume driven through real docker commands.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  BB_IMAGE, DRIVER, IDLE, RUN, SEED_FILES, SEED_IMAGE, calls, e2eSuite, inspectVolume, noOpts, uniq, volumeRows,
} from './harness';

const s = e2eSuite();
const bb = (args: string[], opts = {}) => s.docker(['run', '--rm', ...RUN, ...args], opts);

describe('volume workflows', () => {
  s.scenario('1. named volume: create, inspect, ls, write in one container, read in another, rm', async () => {
    const { hv } = s;
    const v = uniq('named');
    const mark = await hv.mark();
    expect((await s.docker(['volume', 'create', '-d', DRIVER, v])).stdout.trim()).toBe(v);

    const dir = path.join(hv.dataRoot, v);
    expect(fs.statSync(dir).isDirectory()).toBe(true);
    const info = await inspectVolume(s.engine, v);
    expect(info).toMatchObject({ Name: v, Driver: DRIVER, Mountpoint: dir, Scope: 'local' });
    expect(Object.keys(info.Status)).toEqual(expect.arrayContaining(['path', 'options', 'mounts', 'readOnly', 'label', 'createdBy']));
    expect(info.Status).toMatchObject({ path: dir, mounts: 0, readOnly: false, createdBy: 'hostvol' });
    expect(await volumeRows(s.engine)).toContain(`${DRIVER} ${v}`);

    await s.docker(['run', ...RUN, '--name', `${v}-w`, '-v', `${v}:/data`, BB_IMAGE, 'sh', '-c', 'echo payload > /data/f && mkdir /data/sub && echo 2 > /data/sub/g']);
    expect(fs.readFileSync(path.join(dir, 'f'), 'utf8')).toBe('payload\n');
    const r = await s.docker(['run', ...RUN, '--name', `${v}-r`, '-v', `${v}:/data`, BB_IMAGE, 'cat', '/data/f', '/data/sub/g']);
    expect(r.stdout).toBe('payload\n2\n');
    await s.docker(['rm', `${v}-w`, `${v}-r`]);
    // the data outlives both containers
    expect(await volumeRows(s.engine)).toContain(`${DRIVER} ${v}`);
    expect((await bb(['-v', `${v}:/data`, BB_IMAGE, 'cat', '/data/sub/g'])).stdout).toBe('2\n');

    await s.docker(['volume', 'rm', v]);
    expect(await volumeRows(s.engine)).not.toContain(`${DRIVER} ${v}`);
    const gone = await s.docker(['volume', 'inspect', v], { allowFail: true });
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toMatch(/no such volume/i);
    expect(fs.existsSync(dir)).toBe(false);

    const reqs = await hv.since(mark);
    const creates = calls(reqs, 'Create', v);
    expect(creates).toHaveLength(1);
    expect(noOpts(creates[0].body.Opts)).toBe(true);
    expect(creates[0].reply).toEqual({});
    const mounts = calls(reqs, 'Mount', v);
    const unmounts = calls(reqs, 'Unmount', v);
    expect(mounts).toHaveLength(3);
    expect(unmounts.map((u) => u.body.ID).sort()).toEqual(mounts.map((m) => m.body.ID).sort());
    expect(new Set(mounts.map((m) => m.body.ID)).size).toBe(3);
    // Every Mount hands dockerd hostvol's bind of the directory, a path no container can rewrite.
    for (const m of mounts) expect(m.reply).toEqual({ Mountpoint: path.join(hv.stateDir, 'mounts', v) });
    expect(calls(reqs, 'Remove', v).map((x) => x.reply)).toEqual([{}]);
  });

  s.scenario('issue 2 acceptance: create -o uid=1000 -o mode=0750, write, read in another container, inspect, rm', async () => {
    const { hv } = s;
    const v = uniq('acc');
    await s.docker(['volume', 'create', '-d', DRIVER, '-o', 'uid=1000', '-o', 'mode=0750', v]);
    const dir = path.join(hv.dataRoot, v);
    expect([fs.statSync(dir).uid, fs.statSync(dir).mode & 0o777]).toEqual([1000, 0o750]);
    await bb(['-v', `${v}:/d`, BB_IMAGE, 'sh', '-c', 'echo hi > /d/f']);
    expect((await bb(['-v', `${v}:/d`, BB_IMAGE, 'cat', '/d/f'])).stdout).toBe('hi\n');
    const info = await inspectVolume(s.engine, v);
    expect(info.Status).toEqual({
      path: dir, options: { readOnly: false, uid: 1000, mode: '0750' }, mounts: 0, readOnly: false,
      label: '', createdBy: 'hostvol', onRemove: 'delete',
    });
    await s.docker(['volume', 'rm', v]);
    expect(fs.existsSync(dir)).toBe(false);
  });

  s.scenario('2. -o path=<host dir> under an allowed path: host files visible both ways, rm keeps the data', async () => {
    const { hv } = s;
    const v = uniq('hostp');
    const dir = path.join(hv.hostDir, v);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'pre.txt'), 'from the host\n');
    await s.docker(['volume', 'create', '-d', DRIVER, '-o', `path=${dir}`, v]);
    const info = await inspectVolume(s.engine, v);
    expect(info.Mountpoint).toBe(dir);
    expect(info.Options).toEqual({ path: dir });
    expect(info.Status).toMatchObject({ path: dir, createdBy: 'existing' });

    const r = await bb(['-v', `${v}:/d`, BB_IMAGE, 'sh', '-c', 'cat /d/pre.txt && echo from the container > /d/new.txt']);
    expect(r.stdout).toBe('from the host\n');
    expect(fs.readFileSync(path.join(dir, 'new.txt'), 'utf8')).toBe('from the container\n');

    await s.docker(['volume', 'rm', v]);
    expect(await volumeRows(s.engine)).not.toContain(`${DRIVER} ${v}`);
    expect(fs.readdirSync(dir).sort()).toEqual(['new.txt', 'pre.txt']);
    expect(fs.readFileSync(path.join(dir, 'pre.txt'), 'utf8')).toBe('from the host\n');
  });

  s.scenario('3. copy-up: image content fills a new empty volume; :nocopy leaves it empty', async () => {
    const { hv } = s;
    const cu = uniq('copyup');
    const mark = await hv.mark();
    await s.docker(['create', ...RUN, '--name', cu, '--volume-driver', DRIVER, '-v', `${cu}:/seed`, SEED_IMAGE, 'true']);
    // dockerd copies at `docker create`, through its own Mount/Unmount pair
    for (const [rel, content] of Object.entries(SEED_FILES)) {
      expect(fs.readFileSync(path.join(hv.dataRoot, cu, rel.replace(/^seed\//, '')), 'utf8')).toBe(content);
    }
    const atCreate = await hv.since(mark);
    expect(calls(atCreate, 'Create', cu)).toHaveLength(1);
    expect(calls(atCreate, 'Mount', cu)).toHaveLength(1);
    expect(calls(atCreate, 'Unmount', cu).map((u) => u.body.ID)).toEqual(calls(atCreate, 'Mount', cu).map((m) => m.body.ID));
    await s.docker(['start', '-a', cu]);
    const copyId = calls(atCreate, 'Mount', cu)[0].body.ID;
    const startIds = calls(await hv.since(mark), 'Mount', cu).map((m) => m.body.ID).slice(1);
    expect(startIds).toHaveLength(1);
    expect(startIds[0]).not.toBe(copyId);
    // another image sees the copied files through the volume
    const r = await bb(['-v', `${cu}:/data`, BB_IMAGE, 'cat', '/data/x', '/data/sub/y']);
    expect(r.stdout).toBe(SEED_FILES['seed/x'] + SEED_FILES['seed/sub/y']);

    const nc = uniq('nocopy');
    const ncMark = await hv.mark();
    const ls = await bb(['--volume-driver', DRIVER, '-v', `${nc}:/seed:nocopy`, SEED_IMAGE, 'ls', '-A', '/seed']);
    expect(ls.stdout).toBe('');
    expect(fs.readdirSync(path.join(hv.dataRoot, nc))).toEqual([]);
    expect(calls(await hv.since(ncMark), 'Mount', nc)).toHaveLength(1); // no copy-up pair

    // a volume that already has content is not overwritten by copy-up
    const full = uniq('full');
    await bb(['--volume-driver', DRIVER, '-v', `${full}:/d`, BB_IMAGE, 'sh', '-c', 'echo mine > /d/mine']);
    const f = await bb(['-v', `${full}:/seed`, SEED_IMAGE, 'ls', '-A', '/seed']);
    expect(f.stdout).toBe('mine\n');
    await s.docker(['rm', cu]);
    await s.docker(['volume', 'rm', cu, nc, full]);
  });

  s.scenario('4. read-only: :ro is enforced by the engine, -o ro by hostvol ("Read-only file system")', async () => {
    const { hv, engine } = s;
    const v = uniq('rwvol');
    await s.docker(['volume', 'create', '-d', DRIVER, v]);
    fs.writeFileSync(path.join(hv.dataRoot, v, 'existing'), 'keep\n');
    const mark = await hv.mark();
    const ro = await bb(['-v', `${v}:/d:ro`, BB_IMAGE, 'sh', '-c', 'cat /d/existing; echo x > /d/new'], { allowFail: true });
    expect(ro.code).not.toBe(0);
    expect(ro.stdout).toBe('keep\n');
    expect(ro.stderr).toContain('Read-only file system');
    expect(fs.existsSync(path.join(hv.dataRoot, v, 'new'))).toBe(false);
    // :ro never reaches the plugin: a plain Mount {Name, ID}
    const m = calls(await hv.since(mark), 'Mount', v);
    expect(m).toHaveLength(1);
    expect(Object.keys(m[0].body).sort()).toEqual(['ID', 'Name']);

    const vro = uniq('rovol');
    await s.docker(['volume', 'create', '-d', DRIVER, '-o', 'ro', vro]);
    fs.writeFileSync(path.join(hv.dataRoot, vro, 'existing'), 'ro data\n');
    expect((await inspectVolume(engine, vro)).Status.readOnly).toBe(true);
    const bindTarget = path.join(hv.stateDir, 'mounts', vro);
    const mark2 = await hv.mark();
    await s.docker(['run', '-d', ...RUN, '--name', vro, '-v', `${vro}:/d`, BB_IMAGE, ...IDLE]);
    expect(calls(await hv.since(mark2), 'Mount', vro).map((x) => x.reply)).toEqual([{ Mountpoint: bindTarget }]);
    expect(engine.nsMounts(bindTarget)).toEqual([bindTarget]); // hostvol's read-only bind, seen by dockerd
    const w = await s.docker(['exec', vro, 'sh', '-c', 'cat /d/existing; echo x > /d/new'], { allowFail: true });
    expect(w.code).not.toBe(0);
    expect(w.stdout).toBe('ro data\n');
    expect(w.stderr).toContain('Read-only file system');
    expect(fs.existsSync(path.join(hv.dataRoot, vro, 'new'))).toBe(false);
    await s.docker(['rm', '-f', vro]);
    // the last Unmount releases the bind mount
    expect(engine.nsMounts(bindTarget)).toEqual([]);
    await s.docker(['volume', 'rm', v, vro]);
  });

  s.scenario('8. dangling filter lists unused hostvol volumes and not used ones', async () => {
    const unused = uniq('dunused');
    const stopped = uniq('dstopped');
    const running = uniq('drunning');
    for (const v of [unused, stopped, running]) await s.docker(['volume', 'create', '-d', DRIVER, v]);
    await s.docker(['create', ...RUN, '--name', stopped, '-v', `${stopped}:/d`, BB_IMAGE, 'true']);
    await s.docker(['run', '-d', ...RUN, '--name', running, '-v', `${running}:/d`, BB_IMAGE, ...IDLE]);
    const dangling = await volumeRows(s.engine, ['-f', 'dangling=true']);
    expect(dangling).toContain(`${DRIVER} ${unused}`);
    expect(dangling).not.toContain(`${DRIVER} ${stopped}`);
    expect(dangling).not.toContain(`${DRIVER} ${running}`);
    const used = await volumeRows(s.engine, ['-f', 'dangling=false']);
    expect(used).toEqual(expect.arrayContaining([`${DRIVER} ${stopped}`, `${DRIVER} ${running}`]));
    expect(used).not.toContain(`${DRIVER} ${unused}`);
    await s.docker(['rm', '-f', stopped, running]);
    const after = await volumeRows(s.engine, ['-f', 'dangling=true', '-f', `driver=${DRIVER}`]);
    expect(after).toEqual(expect.arrayContaining([unused, stopped, running].map((v) => `${DRIVER} ${v}`)));
    await s.docker(['volume', 'rm', unused, stopped, running]);
  });

  s.scenario('11. --mount with volume-opt=uid=1000,volume-opt=mode=0700 creates the volume with that owner and mode', async () => {
    const { hv } = s;
    const v = uniq('mnt');
    const mark = await hv.mark();
    const r = await bb([
      '--mount', `type=volume,src=${v},dst=/d,volume-driver=${DRIVER},volume-opt=uid=1000,volume-opt=mode=0700`,
      BB_IMAGE, 'stat', '-c', '%u %a', '/d',
    ]);
    expect(r.stdout.trim()).toBe('1000 700');
    const st = fs.statSync(path.join(hv.dataRoot, v));
    expect(st.uid).toBe(1000);
    expect(st.mode & 0o7777).toBe(0o700);
    expect(calls(await hv.since(mark), 'Create', v).map((c) => c.body.Opts)).toEqual([{ uid: '1000', mode: '0700' }]);
    const info = await inspectVolume(s.engine, v);
    expect(info.Driver).toBe(DRIVER);
    expect(info.Options).toEqual({ uid: '1000', mode: '0700' });
    expect(info.Status.options).toMatchObject({ uid: 1000, mode: '0700' });
    await s.docker(['volume', 'rm', v]);
  });

  s.scenario('12. bad options (and a name escaping the data root) fail volume create with hostvol\'s message; nothing is created', async () => {
    const { hv } = s;
    const cases: [string[], RegExp][] = [
      [['-o', 'bogus=1'], /bogus/],
      [['-o', 'path=/etc'], /outside|allowed/],
      [['-o', 'ro', '-o', 'rw'], /\bro\b.*\brw\b|\brw\b.*\bro\b/],
      [['-o', 'mode=999'], /mode/],
    ];
    for (const [opts, message] of cases) {
      const v = uniq('bad');
      const mark = await hv.mark();
      const r = await s.docker(['volume', 'create', '-d', DRIVER, ...opts, v], { allowFail: true });
      expect({ opts, code: r.code }).toEqual({ opts, code: 1 });
      expect(r.stderr).toMatch(message);
      const created = calls(await hv.since(mark), 'Create', v);
      expect(created).toHaveLength(1);
      expect(created[0].reply.Err).toMatch(message);
      expect((await volumeRows(s.engine)).some((row) => row.endsWith(` ${v}`))).toBe(false);
      expect(fs.existsSync(path.join(hv.dataRoot, v))).toBe(false);
      expect((await s.docker(['volume', 'inspect', v], { allowFail: true })).code).not.toBe(0);
      expect((await hv.call('/VolumeDriver.Get', { Name: v })).Err).toBeTruthy();
    }
    // dockerd does not validate plugin volume names: a name that would escape the data root is refused by hostvol
    const escape = `../${uniq('escape')}`;
    const r = await s.docker(['volume', 'create', '-d', DRIVER, escape], { allowFail: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/invalid volume name/);
    expect(fs.existsSync(path.resolve(hv.dataRoot, escape))).toBe(false);
    expect((await volumeRows(s.engine)).some((row) => row.endsWith(escape))).toBe(false);
  });
});
