// Issue 11.6: options given again for a volume name dockerd already knows never reach hostvol. dockerd
// answers `docker volume create` for a known name from its own cache and sends no Create, so the
// plugin cannot refuse (or apply) the new options; the volume keeps the ones it was made with. The
// README says so; these scenarios show it, and show that Compose (which compares driver_opts itself)
// catches the change.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BB_IMAGE, DRIVER, RUN, calls, e2eSuite, inspectVolume, uniq } from './harness';
import { ComposeProject } from './lib/compose';

const s = e2eSuite();

describe('options changed on an existing volume name', () => {
  s.scenario('docker volume create -o ro on an existing volume succeeds, sends no Create, and the volume stays read-write', async () => {
    const { hv } = s;
    const v = uniq('ro');
    await s.docker(['volume', 'create', '-d', DRIVER, '-o', 'uid=1000', v]);
    const before = await inspectVolume(s.engine, v);
    const mark = await hv.mark();

    const again = await s.docker(['volume', 'create', '-d', DRIVER, '-o', 'ro', v]);
    expect(again).toMatchObject({ code: 0, stdout: `${v}\n` });
    expect(calls(await hv.since(mark), 'Create', v)).toEqual([]);
    // hostvol's Get still reports the options it was created with; dockerd's own record is unchanged too
    const after = await inspectVolume(s.engine, v);
    expect(after.Status.options).toEqual(before.Status.options);
    expect(after.Status).toMatchObject({ readOnly: false, options: { uid: 1000, readOnly: false } });
    expect(after.Options).toEqual({ uid: '1000' });
    await s.docker(['run', '--rm', ...RUN, '-v', `${v}:/d`, BB_IMAGE, 'sh', '-c', 'echo still-writable > /d/f']);
    expect(fs.readFileSync(path.join(hv.dataRoot, v, 'f'), 'utf8')).toBe('still-writable\n');
  });

  s.scenario('Compose refuses `up` when driver_opts of an existing volume changed, naming the option and the fix', async () => {
    const p = new ComposeProject(s.engine, uniq('co'));
    const doc = (uid: string) => ({
      version: '2.4',
      services: { app: { image: BB_IMAGE, network_mode: 'none', command: ['true'], volumes: ['data:/d'] } },
      volumes: { data: { driver: DRIVER, driver_opts: { uid } } },
    });
    p.write(doc('1000'));
    await p.run(['up', '-d']);
    await p.run(['down']);
    p.write(doc('2000'));
    const mark = await s.hv.mark();

    const r = await p.run(['up', '-d'], { allowFail: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`a volume with the same name uses a different "uid" driver_opt (1000)`);
    expect(r.stderr).toContain(`docker volume rm ${p.name}_data`);
    expect(calls(await s.hv.since(mark), 'Create')).toEqual([]);
    expect((await inspectVolume(s.engine, `${p.name}_data`)).Status.options).toMatchObject({ uid: 1000 });
    await p.run(['down', '-v']);
  });
});
