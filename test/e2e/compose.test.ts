// Issue 11: Docker Compose 1.29 with hostvol volumes. Compose adds nothing new on the wire
// (driver_opts become Create's Opts, `down -v` is one volume rm per volume it made), so what matters
// is that hostvol's rules come through Compose as they do through the CLI: options applied, data kept
// across down/up, `down -v` deleting data-root volumes but keeping -o path= directories, external
// volumes left alone, and a single-writer (Z) volume refusing a second container when scaled.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BB_IMAGE, DRIVER, calls, e2eSuite, uniq, volumeRows, waitFor } from './harness';
import { ComposeProject } from './lib/compose';

const s = e2eSuite();
const LOOP = 'trap "exit 0" TERM; while :; do sleep 0.2; done';
/** A service on the busybox image with no network (the engine runs with --bridge none). Compose
 * interpolates `$` in the file, so scripts write `$$` for the shell's `$`. */
const service = (script: string, volumes: string[]) => ({
  image: BB_IMAGE, network_mode: 'none', command: ['sh', '-c', `${script}; ${LOOP}`], volumes,
});
const read = (...p: string[]) => fs.readFileSync(path.join(...p), 'utf8');

describe('docker-compose with driver: hostvol volumes', () => {
  s.scenario('up, down, up (data kept), down -v (data-root volumes deleted, path= and external kept)', async () => {
    const { hv } = s;
    const p = new ComposeProject(s.engine, uniq('cp'));
    const [ext, custom] = [uniq('cext'), uniq('ccustom')];
    // not made beforehand: hostvol makes it, and still keeps it on down -v because it was named by path=
    const hostDir = path.join(hv.hostDir, p.name);
    await s.docker(['volume', 'create', '-d', DRIVER, ext]);
    const writeAll = 'for d in /data /host /ext /named; do echo up >> $$d/log; done; ' +
      '(touch /ro/x 2>/dev/null && echo writable || echo refused) > /data/ro-write';
    p.write({
      version: '2.4',
      services: { app: service(writeAll, ['data:/data', 'host:/host', 'ro:/ro', 'ext:/ext', 'named:/named']) },
      volumes: {
        data: { driver: DRIVER, driver_opts: { uid: '1000', mode: '0750' } },
        host: { driver: DRIVER, driver_opts: { path: hostDir } },
        ro: { driver: DRIVER, driver_opts: { ro: '' } },
        ext: { external: true, name: ext },
        named: { driver: DRIVER, name: custom },
      },
    });
    const dirs = { data: path.join(hv.dataRoot, `${p.name}_data`), ro: path.join(hv.dataRoot, `${p.name}_ro`), ext: path.join(hv.dataRoot, ext), named: path.join(hv.dataRoot, custom) };
    const logs = () => [read(dirs.data, 'log'), read(hostDir, 'log'), read(dirs.ext, 'log'), read(dirs.named, 'log')];
    const mark = await hv.mark();

    await p.run(['up', '-d']);
    await waitFor('the first run to write every volume', () => fs.existsSync(path.join(dirs.data, 'ro-write')), 20_000);
    expect(logs()).toEqual(['up\n', 'up\n', 'up\n', 'up\n']);
    expect(read(dirs.data, 'ro-write')).toBe('refused\n');
    expect(fs.statSync(dirs.data).uid).toBe(1000);
    expect(fs.statSync(dirs.data).mode & 0o777).toBe(0o750);
    // driver_opts arrive as Create's Opts; the external volume is never created by Compose
    const reqs = await hv.since(mark);
    expect(calls(reqs, 'Create', `${p.name}_data`).map((r) => r.body.Opts)).toEqual([{ uid: '1000', mode: '0750' }]);
    expect(calls(reqs, 'Create', `${p.name}_host`).map((r) => r.body.Opts)).toEqual([{ path: hostDir }]);
    expect(calls(reqs, 'Create', ext)).toEqual([]);

    await p.run(['down']);
    expect((await s.docker(['ps', '-aq'])).stdout).toBe('');
    await p.run(['up', '-d']);
    await waitFor('the second run to write', () => read(dirs.named, 'log') === 'up\nup\n', 20_000);
    expect(logs()).toEqual(['up\nup\n', 'up\nup\n', 'up\nup\n', 'up\nup\n']);

    await p.run(['down', '-v']);
    const left = await volumeRows(s.engine);
    for (const v of [`${p.name}_data`, `${p.name}_host`, `${p.name}_ro`, custom]) expect(left).not.toContain(`${DRIVER} ${v}`);
    expect(left).toContain(`${DRIVER} ${ext}`);
    // hostvol's remove rule: what it made in its data root goes; a directory named with path= stays
    expect([dirs.data, dirs.ro, dirs.named].filter((d) => fs.existsSync(d))).toEqual([]);
    expect(read(hostDir, 'log')).toBe('up\nup\n');
    expect(read(dirs.ext, 'log')).toBe('up\nup\n');
  }, 120_000);

  s.scenario('--scale of a service on a Z volume: the second container is refused with hostvol\'s single-writer message', async () => {
    const p = new ComposeProject(s.engine, uniq('cz'));
    p.write({
      version: '2.4',
      services: { one: service('echo $$(hostname) >> /z/writers', ['z:/z']) },
      volumes: { z: { driver: DRIVER, driver_opts: { Z: '' } } },
    });
    const r = await p.run(['up', '-d', '--scale', 'one=2'], { allowFail: true });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain(`volume "${p.name}_z" is single-writer (option Z) and is already mounted by another container`);
    // exactly one container runs and wrote; the refused one never started
    const running = (await s.docker(['ps', '-q', '-f', `label=com.docker.compose.project=${p.name}`])).stdout.split('\n').filter(Boolean);
    expect(running).toHaveLength(1);
    await waitFor('the running one to write', () => fs.existsSync(path.join(s.hv.dataRoot, `${p.name}_z`, 'writers')), 10_000);
    expect(read(s.hv.dataRoot, `${p.name}_z`, 'writers').split('\n').filter(Boolean)).toHaveLength(1);
    await p.run(['down', '-v']);
    expect(fs.existsSync(path.join(s.hv.dataRoot, `${p.name}_z`))).toBe(false);
  }, 90_000);
});
