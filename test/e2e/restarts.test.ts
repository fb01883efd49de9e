// Issue 3, scenarios 13 and 14, and moby's TestExternalVolumeDriverWithDaemonRestart: hostvol and dockerd
// restarted underneath running containers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  BB_IMAGE, DRIVER, IDLE, RUN, calls, e2eSuite, inspectContainer, inspectVolume, uniq, volumeRows, waitFor,
} from './harness';

const s = e2eSuite();
const exec = (c: string, script: string, opts = {}) => s.docker(['exec', c, 'sh', '-c', script], opts);
/** Appends "up" to /d/log at every start, then idles (exits promptly on SIGTERM). */
const LOGGER = ['sh', '-c', 'echo up >> /d/log; trap "exit 0" TERM; while :; do sleep 0.2; done'];
/** stderr without the CLI's networking warning (dockerd runs with --bridge none and no IP forwarding). */
const errorsOf = (stderr: string) => stderr.split('\n').filter((l) => l && !l.startsWith('WARNING: IPv4 forwarding')).join('\n');

describe('restarts', () => {
  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    s.scenario(`13. hostvol restarted after ${sig} under a running container: data access, ls/inspect, lease release, rm`, async () => {
      const { hv, engine } = s;
      const v = uniq('hvr');
      const vro = uniq('hvrro');
      const c = `${v}-c`;
      await s.docker(['volume', 'create', '-d', DRIVER, v]);
      await s.docker(['volume', 'create', '-d', DRIVER, '-o', 'ro', vro]);
      fs.writeFileSync(path.join(hv.dataRoot, vro, 'existing'), 'read-only data\n');
      await s.docker(['run', '-d', ...RUN, '--name', c, '-v', `${v}:/d`, '-v', `${vro}:/r`, BB_IMAGE, ...IDLE]);
      await exec(c, 'echo before > /d/before');
      const bind = path.join(hv.stateDir, 'mounts', vro);
      expect(engine.nsMounts(bind)).toEqual([bind]);
      const mark = await hv.mark();
      const ids = Object.fromEntries(
        (await hv.requests()).filter((r) => r.route === '/VolumeDriver.Mount').map((r) => [r.body.Name, r.body.ID]),
      );

      const pidBefore = hv.pid;
      if (sig === 'SIGTERM') {
        expect(await hv.stop()).toBe(true); // exits by itself on SIGTERM
        expect(hv.lastExit).toEqual({ code: 0, signal: null });
      } else {
        await hv.kill();
        expect(fs.existsSync(hv.socket)).toBe(true); // a crash leaves the socket file behind
      }
      // the container keeps its data while the plugin is down
      expect((await exec(c, 'cat /d/before /r/existing')).stdout).toBe('before\nread-only data\n');
      await hv.start();
      expect(hv.pid).not.toBe(pidBefore);

      expect((await exec(c, 'echo after > /d/after && cat /d/before /r/existing')).stdout).toBe('before\nread-only data\n');
      expect(fs.readFileSync(path.join(hv.dataRoot, v, 'after'), 'utf8')).toBe('after\n');
      expect((await exec(c, 'echo x > /r/x', { allowFail: true })).stderr).toContain('Read-only file system');
      const rows = await volumeRows(engine);
      expect(rows).toEqual(expect.arrayContaining([`${DRIVER} ${v}`, `${DRIVER} ${vro}`]));
      // the leases survived the restart, and so did the read-only bind mount
      expect((await inspectVolume(engine, v)).Status.mounts).toBe(1);
      expect((await inspectVolume(engine, vro)).Status).toMatchObject({ mounts: 1, readOnly: true });
      expect(engine.nsMounts(bind)).toEqual([bind]);

      await s.docker(['stop', c]);
      await waitFor('Unmounts after stop', async () => calls(await hv.since(mark), 'Unmount').length >= 2, 15_000);
      const unmounts = calls(await hv.since(mark), 'Unmount');
      expect(unmounts.map((u) => [u.body.Name, u.body.ID, u.reply]).sort()).toEqual(
        [[v, ids[v], {}], [vro, ids[vro], {}]].sort(),
      );
      expect((await inspectVolume(engine, v)).Status.mounts).toBe(0);
      expect((await inspectVolume(engine, vro)).Status.mounts).toBe(0);
      expect(engine.nsMounts(bind)).toEqual([]);
      await s.docker(['rm', c]);
      await s.docker(['volume', 'rm', v, vro]);
      expect(fs.existsSync(path.join(hv.dataRoot, v))).toBe(false);
      expect(await volumeRows(engine)).not.toContain(`${DRIVER} ${v}`);
    }, 90_000);
  }

  s.scenario('moby WithDaemonRestart: after a dockerd restart -v abc1:/foo without a driver flag still uses hostvol', async () => {
    const { hv, engine } = s;
    const n = uniq('abc');
    const c = `${n}-c`;
    await s.docker(['run', ...RUN, '--name', c, '-v', `${n}:/foo`, '--volume-driver', DRIVER, BB_IMAGE, 'sh', '-c', 'echo kept > /foo/f']);
    await engine.restartDaemon();
    const mark = await hv.mark();
    const r = await s.docker(['run', '--rm', ...RUN, '-v', `${n}:/foo`, BB_IMAGE, 'cat', '/foo/f']);
    expect(r.stdout).toBe('kept\n');
    expect(calls(await hv.since(mark), 'Mount', n)).toHaveLength(1);
    expect((await inspectVolume(engine, n)).Driver).toBe(DRIVER);
    await s.docker(['rm', c]);
    await s.docker(['volume', 'rm', n]);
  }, 90_000);

  s.scenario('14a. dockerd restarted without live-restore: volumes listed with data, --restart=always container remounts', async () => {
    const { hv, engine } = s;
    const t = uniq('');
    const [v1, v2, v3] = [`dr1${t}`, `dr2${t}`, `dr3${t}`];
    const [always, plain] = [`always${t}`, `plain${t}`];
    for (const v of [v1, v2, v3]) await s.docker(['volume', 'create', '-d', DRIVER, v]);
    fs.writeFileSync(path.join(hv.dataRoot, v3, 'f'), 'unused volume data\n');
    await s.docker(['run', '-d', ...RUN, '--restart=always', '--name', always, '-v', `${v1}:/d`, BB_IMAGE, ...LOGGER]);
    await s.docker(['run', '-d', ...RUN, '--name', plain, '-v', `${v2}:/d`, BB_IMAGE, ...LOGGER]);
    await waitFor('first start logged', () => fs.existsSync(path.join(hv.dataRoot, v1, 'log')), 10_000);
    const mark = await hv.mark();
    const before = Object.fromEntries(
      (await hv.requests()).filter((r) => r.route === '/VolumeDriver.Mount').map((r) => [r.body.Name, r.body.ID]),
    );

    await engine.restartDaemon({ liveRestore: false });
    const rows = await volumeRows(engine);
    expect(rows).toEqual(expect.arrayContaining([v1, v2, v3].map((v) => `${DRIVER} ${v}`)));
    await waitFor('restart=always container running', async () => (await inspectContainer(engine, always)).State.Running, 30_000);
    expect((await exec(always, 'cat /d/log')).stdout).toBe('up\nup\n');
    expect((await inspectContainer(engine, plain)).State.Running).toBe(false);
    expect((await s.docker(['run', '--rm', ...RUN, '-v', `${v3}:/d`, BB_IMAGE, 'cat', '/d/f'])).stdout).toBe('unused volume data\n');

    const reqs = await hv.since(mark);
    // shutdown unmounted both containers' volumes with their IDs; the restarted container got a new ID
    expect(calls(reqs, 'Unmount', v1).map((u) => u.body.ID)).toContain(before[v1]);
    expect(calls(reqs, 'Unmount', v2).map((u) => u.body.ID)).toEqual([before[v2]]);
    const remount = calls(reqs, 'Mount', v1);
    expect(remount).toHaveLength(1);
    expect(remount[0].body.ID).not.toBe(before[v1]);
    expect(calls(reqs, 'Mount', v2)).toHaveLength(0);
    expect(calls(reqs, 'Activate')).toHaveLength(1); // the new daemon activated the plugin again
    expect((await inspectVolume(engine, v1)).Status.mounts).toBe(1);
    expect((await inspectVolume(engine, v2)).Status.mounts).toBe(0);
    await s.docker(['rm', '-f', always, plain]);
    await s.docker(['volume', 'rm', v1, v2, v3]);
  }, 120_000);

  s.scenario('14b. dockerd restarted with --live-restore: containers keep running and mounted, no Unmount/Mount', async () => {
    const { hv, engine } = s;
    await engine.restartDaemon({ liveRestore: true });
    const t = uniq('');
    const [v, vro] = [`lr${t}`, `lrro${t}`];
    const [c, always] = [`lrc${t}`, `lra${t}`];
    await s.docker(['volume', 'create', '-d', DRIVER, v]);
    await s.docker(['volume', 'create', '-d', DRIVER, '-o', 'ro', vro]);
    await s.docker(['run', '-d', ...RUN, '--name', c, '-v', `${v}:/d`, '-v', `${vro}:/r`, BB_IMAGE, ...LOGGER]);
    await s.docker(['run', '-d', ...RUN, '--restart=always', '--name', always, '-v', `${v}:/d`, BB_IMAGE, ...IDLE]);
    await waitFor('first start logged', () => fs.existsSync(path.join(hv.dataRoot, v, 'log')), 10_000);
    const state = (await inspectContainer(engine, c)).State;
    const mark = await hv.mark();
    const ids = (await hv.requests()).filter((r) => r.route === '/VolumeDriver.Mount' && r.body.Name === v).map((r) => r.body.ID);
    expect(ids).toHaveLength(2);

    await engine.restartDaemon({ liveRestore: true });
    const after = (await inspectContainer(engine, c)).State;
    expect(after).toMatchObject({ Running: true, Pid: state.Pid, StartedAt: state.StartedAt });
    expect((await inspectContainer(engine, always)).State.Running).toBe(true);
    expect((await exec(c, 'cat /d/log && echo again > /d/again')).stdout).toBe('up\n');
    expect(fs.readFileSync(path.join(hv.dataRoot, v, 'again'), 'utf8')).toBe('again\n');
    expect(await volumeRows(engine)).toEqual(expect.arrayContaining([`${DRIVER} ${v}`, `${DRIVER} ${vro}`]));
    let reqs = await hv.since(mark);
    expect(calls(reqs, 'Unmount')).toHaveLength(0);
    expect(calls(reqs, 'Mount')).toHaveLength(0);
    expect((await inspectVolume(engine, v)).Status.mounts).toBe(2);
    expect(engine.nsMounts(path.join(hv.stateDir, 'mounts', vro))).toHaveLength(1);

    // stopping later unmounts with the IDs from before the restart
    await s.docker(['stop', c, always]);
    await waitFor('Unmounts after stop', async () => calls(await hv.since(mark), 'Unmount').length >= 3, 15_000);
    reqs = await hv.since(mark);
    expect(calls(reqs, 'Unmount', v).map((u) => u.body.ID).sort()).toEqual([...ids].sort());
    expect(calls(reqs, 'Unmount', vro)).toHaveLength(1);
    expect((await inspectVolume(engine, v)).Status.mounts).toBe(0);
    expect(engine.nsMounts(path.join(hv.stateDir, 'mounts', vro))).toEqual([]);
    await s.docker(['rm', c, always]);
    await s.docker(['volume', 'rm', v, vro]);
  }, 120_000);

  s.scenario('14c. dockerd killed (SIGKILL) and started again: containers come back, and once they are gone the leases are released', async () => {
    const { hv, engine } = s;
    const t = uniq('');
    const [v, vz] = [`dk${t}`, `dkz${t}`];
    const [always, plain] = [`dka${t}`, `dkp${t}`];
    await s.docker(['volume', 'create', '-d', DRIVER, v]);
    await s.docker(['volume', 'create', '-d', DRIVER, '-o', 'Z', vz]);
    await s.docker(['run', '-d', ...RUN, '--restart=always', '--name', always, '-v', `${v}:/d`, '-v', `${vz}:/z`, BB_IMAGE, ...LOGGER]);
    await s.docker(['run', '-d', ...RUN, '--name', plain, '-v', `${v}:/d`, BB_IMAGE, ...IDLE]);
    await waitFor('first start logged', () => fs.existsSync(path.join(hv.dataRoot, v, 'log')), 10_000);
    const mark = await hv.mark();

    await engine.restartDaemon({ liveRestore: false, signal: 'SIGKILL' });
    await waitFor('restart=always container running', async () => (await inspectContainer(engine, always)).State.Running, 30_000);
    expect((await exec(always, 'cat /d/log')).stdout).toBe('up\nup\n');
    expect((await inspectContainer(engine, plain)).State.Running).toBe(false);
    expect(await volumeRows(engine)).toEqual(expect.arrayContaining([`${DRIVER} ${v}`, `${DRIVER} ${vz}`]));
    // a crash sends no Unmount for the containers that were running
    expect(calls(await hv.since(mark), 'Unmount')).toHaveLength(0);

    await s.docker(['rm', '-f', always, plain]);
    await waitFor('Unmounts after rm -f', async () => calls(await hv.since(mark), 'Unmount').length >= 2, 15_000);
    // nothing uses the volumes any more: a new container may take the single-writer volume, and both can be removed
    const z = await s.docker(['run', '--rm', ...RUN, '-v', `${vz}:/z`, BB_IMAGE, 'true'], { allowFail: true });
    expect({ code: z.code, error: errorsOf(z.stderr) }).toEqual({ code: 0, error: '' });
    // the lease of the container killed with dockerd (never unmounted) is dropped by hostvol's sweep
    await waitFor('stale leases dropped', async () => (await inspectVolume(engine, v)).Status.mounts === 0, 20_000);
    expect((await inspectVolume(engine, vz)).Status.mounts).toBe(0);
    const rm = await s.docker(['volume', 'rm', v, vz], { allowFail: true });
    expect({ code: rm.code, error: errorsOf(rm.stderr) }).toEqual({ code: 0, error: '' });
  }, 120_000);
});
