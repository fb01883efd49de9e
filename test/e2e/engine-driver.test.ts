// The engine's own external-volume-driver scenarios (moby integration-cli/docker_cli_external_volume_driver_test.go),
// run against hostvol and checked with the same call counts from hostvol's request log.
// (TestExternalVolumeDriverWithDaemonRestart is in restarts.test.ts, next to the other restarts.)
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  BB_IMAGE, DRIVER, HEX64, IDLE, RUN, calls, counts, e2eSuite, inspectContainer, inspectVolume, noOpts, uniq, volumeRows,
  waitFor,
} from './harness';

const s = e2eSuite();
const bb = (args: string[], opts = {}) => s.docker(['run', '--rm', ...RUN, ...args], opts);

describe('moby external volume driver scenarios against hostvol', () => {
  s.scenario('Capabilities: three creates activate the plugin and ask Capabilities once; Scope is local', async () => {
    const names = [uniq('cap'), uniq('cap'), uniq('cap')];
    for (const n of names) await s.docker(['volume', 'create', '-d', DRIVER, n]);
    for (const n of names) expect((await inspectVolume(s.engine, n)).Scope).toBe('local');
    // whole log: a legacy plugin is activated, and asked for its capabilities, once per daemon lifetime
    const all = await s.hv.requests();
    expect(calls(all, 'Activate')).toHaveLength(1);
    expect(calls(all, 'Capabilities')).toHaveLength(1);
    expect(calls(all, 'Capabilities')[0].reply).toEqual({ Capabilities: { Scope: 'local' } });
    expect(calls(all, 'Activate')[0].reply).toEqual({ Implements: ['VolumeDriver'] });
    await s.docker(['volume', 'rm', ...names]);
  });

  s.scenario('CreateOptionConflict: a name held by local cannot be created on hostvol; same driver again is fine', async () => {
    const n = uniq('conflict');
    await s.docker(['volume', 'create', n]);
    const mark = await s.hv.mark();
    const r = await s.docker(['volume', 'create', '-d', DRIVER, n], { allowFail: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/must be unique|already has volume|already exists/);
    expect(calls(await s.hv.since(mark), 'Create', n)).toHaveLength(0);
    await s.docker(['volume', 'create', n]);
    expect((await inspectVolume(s.engine, n)).Driver).toBe('local');
    await s.docker(['volume', 'rm', n]);
  });

  s.scenario('Named: run --rm -v name:/p --volume-driver hostvol, then volume rm: create 1, mount 1, unmount 1, remove 1', async () => {
    const n = uniq('extnamed');
    const mark = await s.hv.mark();
    const r = await bb(['-v', `${n}:/p`, '--volume-driver', DRIVER, BB_IMAGE, 'sh', '-c', 'echo hello > /p/test && cat /p/test']);
    expect(r.stdout).toBe('hello\n');
    await s.docker(['volume', 'rm', n]);
    expect(counts(await s.hv.since(mark), n)).toMatchObject({ Create: 1, Mount: 1, Unmount: 1, Remove: 1 });
    expect(calls(await s.hv.since(mark), 'Activate')).toHaveLength(0);
  });

  s.scenario('Unnamed: run --rm -v /p --volume-driver hostvol: create, mount, unmount, remove once each', async () => {
    const mark = await s.hv.mark();
    await bb(['-v', '/p', '--volume-driver', DRIVER, BB_IMAGE, 'sh', '-c', 'echo x > /p/f']);
    const reqs = await s.hv.since(mark);
    const names = [...new Set(calls(reqs, 'Create').map((c) => c.body.Name as string))];
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(HEX64);
    expect(noOpts(calls(reqs, 'Create')[0].body.Opts)).toBe(true);
    expect(counts(reqs, names[0])).toMatchObject({ Create: 1, Mount: 1, Unmount: 1, Remove: 1 });
  });

  s.scenario('VolumesFrom: second container --volumes-from the first, then rm -fv: create 1, mount 2, unmount 2, remove 1', async () => {
    const c1 = uniq('vft');
    const mark = await s.hv.mark();
    await s.docker(['run', '-d', ...RUN, '--name', c1, '-v', '/foo', '--volume-driver', DRIVER, BB_IMAGE, ...IDLE]);
    await s.docker(['exec', c1, 'sh', '-c', 'echo from-first > /foo/f']);
    expect((await bb(['--volumes-from', c1, BB_IMAGE, 'cat', '/foo/f'])).stdout).toBe('from-first\n');
    await s.docker(['rm', '-f', '-v', c1]);
    const reqs = await s.hv.since(mark);
    const n = calls(reqs, 'Create')[0].body.Name;
    expect(counts(reqs, n)).toMatchObject({ Create: 1, Mount: 2, Unmount: 2, Remove: 1 });
    const mountIds = calls(reqs, 'Mount', n).map((m) => m.body.ID);
    expect(new Set(mountIds).size).toBe(2); // --volumes-from gets its own Mount ID
    expect(calls(reqs, 'Unmount', n).map((u) => u.body.ID).sort()).toEqual([...mountIds].sort());
  });

  s.scenario('DeleteContainer: anonymous volume, rm -fv: create 1, mount 1, unmount 1, remove 1', async () => {
    const c = uniq('delc');
    const mark = await s.hv.mark();
    await s.docker(['run', ...RUN, '--name', c, '-v', '/foo', '--volume-driver', DRIVER, BB_IMAGE, 'true']);
    const n = calls(await s.hv.since(mark), 'Create')[0].body.Name;
    expect(fs.existsSync(path.join(s.hv.dataRoot, n))).toBe(true);
    await s.docker(['rm', '-fv', c]);
    expect(counts(await s.hv.since(mark), n)).toMatchObject({ Create: 1, Mount: 1, Unmount: 1, Remove: 1 });
    expect(fs.existsSync(path.join(s.hv.dataRoot, n))).toBe(false);
  });

  s.scenario('BindExternalVolume: -v foo:/bar without --volume-driver uses the plugin that owns foo', async () => {
    const n = uniq('foo');
    const c = uniq('bindext');
    await s.docker(['volume', 'create', '-d', DRIVER, n]);
    const mark = await s.hv.mark();
    await s.docker(['run', '-d', ...RUN, '--name', c, '-v', `${n}:/bar`, BB_IMAGE, ...IDLE]);
    const m = (await inspectContainer(s.engine, c)).Mounts;
    expect(m).toHaveLength(1);
    expect(m[0]).toMatchObject({ Type: 'volume', Name: n, Driver: DRIVER, Destination: '/bar' });
    await s.docker(['exec', c, 'sh', '-c', 'echo via-plugin > /bar/f']);
    expect(fs.readFileSync(path.join(s.hv.dataRoot, n, 'f'), 'utf8')).toBe('via-plugin\n');
    expect(counts(await s.hv.since(mark), n)).toMatchObject({ Mount: 1 });
    expect(calls(await s.hv.since(mark), 'Create', n)).toHaveLength(0);
    await s.docker(['rm', '-f', c]);
    await s.docker(['volume', 'rm', n]);
  });

  s.scenario('List: volume ls shows one hostvol row and calls List once', async () => {
    const n = uniq('abc');
    await s.docker(['volume', 'create', '-d', DRIVER, n]);
    const mark = await s.hv.mark();
    const rows = (await volumeRows(s.engine)).filter((r) => r.endsWith(` ${n}`));
    expect(rows).toEqual([`${DRIVER} ${n}`]);
    const lists = calls(await s.hv.since(mark), 'List');
    expect(lists).toHaveLength(1);
    expect(lists[0].reply.Volumes).toEqual(expect.arrayContaining([{ Name: n, Mountpoint: path.join(s.hv.dataRoot, n) }]));
    await s.docker(['volume', 'rm', n]);
  });

  s.scenario('Get: inspect of a missing name fails after exactly one Get; after create inspect shows Status', async () => {
    const missing = uniq('dummy');
    const mark = await s.hv.mark();
    const r = await s.docker(['volume', 'inspect', missing], { allowFail: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no such volume/i);
    const gets = calls(await s.hv.since(mark), 'Get', missing);
    expect(gets).toHaveLength(1);
    expect(gets[0].reply.Err).toContain(missing);

    const n = uniq('gettest');
    await s.docker(['volume', 'create', '-d', DRIVER, n]);
    const info = await inspectVolume(s.engine, n);
    expect(info.Driver).toBe(DRIVER);
    expect(info.Status).toMatchObject({ path: path.join(s.hv.dataRoot, n), mounts: 0, readOnly: false, label: '', createdBy: 'hostvol' });
    expect(Date.parse(info.CreatedAt)).toBeGreaterThan(Date.now() - 600_000);
    await s.docker(['volume', 'rm', n]);
  });

  s.scenario('PathCalls: volume create and volume ls make no Path calls', async () => {
    const mark = await s.hv.mark();
    const n = uniq('pathcalls');
    await s.docker(['volume', 'create', '-d', DRIVER, n]);
    await s.docker(['volume', 'ls']);
    const reqs = await s.hv.since(mark);
    expect(calls(reqs, 'Create', n)).toHaveLength(1);
    expect(calls(reqs, 'List')).toHaveLength(1);
    expect(calls(reqs, 'Path')).toHaveLength(0);
    await s.docker(['volume', 'rm', n]);
  });

  s.scenario('MountID: a run through the plugin receives a 64-hex Mount ID, and Unmount carries the same one', async () => {
    const n = uniq('mountid');
    const c = uniq('mid');
    const mark = await s.hv.mark();
    await s.docker(['run', ...RUN, '--name', c, '-v', `${n}:/p`, '--volume-driver', DRIVER, BB_IMAGE, 'true']);
    const reqs = await s.hv.since(mark);
    const [m] = calls(reqs, 'Mount', n);
    expect(m.body.ID).toMatch(HEX64);
    expect(m.body.ID).not.toBe((await inspectContainer(s.engine, c)).Id);
    expect(calls(reqs, 'Unmount', n).map((u) => u.body.ID)).toEqual([m.body.ID]);
    await s.docker(['rm', c]);
    await s.docker(['volume', 'rm', n]);
  });

  s.scenario('OutOfBandDelete: after hostvol forgets a volume, re-create with new options works, then on local', async () => {
    const n = uniq('oob');
    await s.docker(['volume', 'create', '-d', DRIVER, n]);
    // simulate out-of-band deletion on the plugin level: remove it behind dockerd's back
    expect(await s.hv.call('/VolumeDriver.Remove', { Name: n })).toEqual({});
    await s.docker(['volume', 'create', '-d', DRIVER, '-o', 'mode=0700', n]);
    let info = await inspectVolume(s.engine, n);
    expect(info).toMatchObject({ Driver: DRIVER, Options: { mode: '0700' } });
    expect(info.Status.options.mode).toBe('0700');
    expect(fs.statSync(path.join(s.hv.dataRoot, n)).mode & 0o7777).toBe(0o700);

    expect(await s.hv.call('/VolumeDriver.Remove', { Name: n })).toEqual({});
    await s.docker(['volume', 'create', n]);
    info = await inspectVolume(s.engine, n);
    expect(info.Driver).toBe('local');
    expect(noOpts(info.Options)).toBe(true);
    await s.docker(['volume', 'rm', n]);
  });

  s.scenario('UnmountOnMountFail: a failed Mount is never followed by an Unmount (also with -w)', async () => {
    const { hv } = s;
    // failure 1: single-writer volume already held by another container
    const z = uniq('umf');
    await s.docker(['volume', 'create', '-d', DRIVER, '-o', 'Z', z]);
    const holder = uniq('holder');
    await s.docker(['run', '-d', ...RUN, '--name', holder, '-v', `${z}:/foo`, BB_IMAGE, ...IDLE]);
    // failure 2: the volume's directory was deleted behind hostvol's back
    const gone = uniq('umfgone');
    await s.docker(['volume', 'create', '-d', DRIVER, gone]);
    fs.rmdirSync(path.join(hv.dataRoot, gone));
    for (const [n, extra] of [[z, []], [z, ['-w', '/foo']], [gone, []], [gone, ['-w', '/foo']]] as [string, string[]][]) {
      const mark = await hv.mark();
      const r = await bb([...extra, '-v', `${n}:/foo`, BB_IMAGE, 'true'], { allowFail: true });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(n);
      const reqs = await hv.since(mark);
      const mounts = calls(reqs, 'Mount', n);
      expect(mounts).toHaveLength(1);
      expect(mounts[0].reply.Err).toBeTruthy();
      expect(calls(reqs, 'Unmount', n)).toHaveLength(0);
    }
    await s.docker(['rm', '-f', holder]);
    // a volume whose directory vanished can still be removed
    await s.docker(['volume', 'rm', z, gone]);
    expect((await volumeRows(s.engine)).filter((r) => r.endsWith(z) || r.endsWith(gone))).toEqual([]);
  });

  s.scenario('UnmountOnCp: docker cp on a running container mounts its ID again and unmounts it; kill releases all', async () => {
    const { hv, engine } = s;
    for (const ro of [false, true]) {
      const n = uniq(ro ? 'cpro' : 'cptest');
      const c = `${n}-c`;
      await s.docker(['volume', 'create', '-d', DRIVER, ...(ro ? ['-o', 'ro'] : []), n]);
      fs.writeFileSync(path.join(hv.dataRoot, n, 'f'), `data of ${n}\n`);
      const mark = await hv.mark();
      await s.docker(['run', '-d', ...RUN, '--name', c, '-v', `${n}:/foo`, BB_IMAGE, ...IDLE]);
      expect(counts(await hv.since(mark), n)).toMatchObject({ Mount: 1 });
      const id = calls(await hv.since(mark), 'Mount', n)[0].body.ID;

      const out = path.join(engine.base, `${n}.out`);
      await s.docker(['cp', `${c}:/foo/f`, out]);
      expect(fs.readFileSync(out, 'utf8')).toBe(`data of ${n}\n`);
      let reqs = await hv.since(mark);
      expect({ Mount: calls(reqs, 'Mount', n).length, Unmount: calls(reqs, 'Unmount', n).length }).toEqual({ Mount: 2, Unmount: 1 });
      expect(calls(reqs, 'Mount', n).map((m) => m.body.ID)).toEqual([id, id]);
      // the container still holds the volume: hostvol counts Mounts per ID, not a set of IDs
      expect((await inspectVolume(engine, n)).Status.mounts).toBe(1);
      if (ro) expect(engine.nsMounts(path.join(hv.stateDir, 'mounts', n))).toHaveLength(1);
      expect((await s.docker(['exec', c, 'cat', '/foo/f'])).stdout).toBe(`data of ${n}\n`);

      await s.docker(['kill', c]);
      // the container's Unmount follows its exit asynchronously
      await waitFor('Unmount after kill', async () => calls(await hv.since(mark), 'Unmount', n).length >= 2, 15_000);
      reqs = await hv.since(mark);
      expect({ Mount: calls(reqs, 'Mount', n).length, Unmount: calls(reqs, 'Unmount', n).length }).toEqual({ Mount: 2, Unmount: 2 });
      expect(calls(reqs, 'Unmount', n).map((u) => u.body.ID)).toEqual([id, id]);
      expect((await inspectVolume(engine, n)).Status.mounts).toBe(0);
      if (ro) expect(engine.nsMounts(path.join(hv.stateDir, 'mounts', n))).toEqual([]);
      await s.docker(['rm', c]);
      await s.docker(['volume', 'rm', n]);
    }
  });

  s.scenario('over this whole run: no Path call, and every Mountpoint handed to dockerd is inside hostvol\'s directories', async () => {
    const all = await s.hv.requests();
    expect(all.length).toBeGreaterThan(50);
    expect(calls(all, 'Path')).toHaveLength(0);
    const points = calls(all, 'Mount').filter((m) => !m.reply.Err).map((m) => m.reply.Mountpoint as string);
    expect(points.length).toBeGreaterThan(5);
    for (const p of points) {
      expect(p.startsWith(s.hv.dataRoot + '/') || p.startsWith(path.join(s.hv.stateDir, 'mounts') + '/')).toBe(true);
    }
  });
});
