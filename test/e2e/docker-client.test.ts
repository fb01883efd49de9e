// src/admin/docker.ts against a real dockerd: the calls the admin commands and the archive routes
// make, and the errors an operator sees when dockerd refuses or is not there.
import { DockerClient, DockerUnreachableError } from '../../src/admin/docker';
import { ConflictError, NotFoundError } from '../../src/errors';
import { BB_IMAGE, DRIVER, IDLE, RUN, e2eSuite, uniq } from './harness';

const s = e2eSuite();
let docker: DockerClient;
beforeAll(() => {
  docker = new DockerClient(s.engine.sock);
});
afterAll(() => docker?.close());

const state = async (c: string) => (await s.docker(['inspect', '-f', '{{.State.Status}}', c])).stdout.trim();

describe('dockerd client', () => {
  s.scenario('createVolume goes through dockerd to hostvol with options and labels; listVolumes filters; removeVolume', async () => {
    const v = uniq('dc');
    const made = await docker.createVolume(v, DRIVER, { mode: '0700' }, 'test', { team: 'a' });
    expect(made).toMatchObject({ Name: v, Driver: DRIVER, Labels: { team: 'a' } });
    expect((await s.hv.call('/VolumeDriver.Get', { Name: v })).Volume.Status.options).toMatchObject({ mode: '0700' });
    const listed = await docker.listVolumes({ driver: [DRIVER], label: ['team=a'], dangling: ['true'] }, 'test');
    expect(listed.map((x) => x.Name)).toEqual([v]);
    await docker.removeVolume(v, 'test');
    await expect(docker.removeVolume(v, 'test')).rejects.toThrow(NotFoundError);
  });

  s.scenario('containersUsing, pause and unpause; a volume in use is a ConflictError on remove', async () => {
    const v = uniq('dp');
    await s.docker(['volume', 'create', '-d', DRIVER, v]);
    const id = (await s.docker(['run', '-d', ...RUN, '-v', `${v}:/d:ro`, BB_IMAGE, ...IDLE])).stdout.trim();
    expect(await docker.containersUsing(v, 'test')).toEqual([expect.objectContaining({ id, state: 'running', rw: false, destination: '/d' })]);
    await docker.pause(id, 'test');
    expect(await state(id)).toBe('paused');
    expect((await docker.containersUsing(v, 'test'))[0].state).toBe('paused');
    await docker.unpause(id, 'test');
    expect(await state(id)).toBe('running');
    await expect(docker.removeVolume(v, 'test')).rejects.toThrow(ConflictError);
    await expect(docker.pause('no-such-container', 'test')).rejects.toThrow(/^dockerd refused POST \/containers\/no-such-container\/pause: No such container: no-such-container$/);
    await s.docker(['rm', '-f', id]);
    await s.docker(['volume', 'rm', v]);
  });

  s.scenario('pluginId names a missing plugin and where it looked; a missing dockerd names its socket and the command', async () => {
    await expect(docker.pluginId('nope', 'test')).rejects.toThrow(`no plugin named "nope" is installed in dockerd at ${s.engine.sock}; see docker plugin ls`);
    const gone = new DockerClient(`${s.engine.base}/nothing.sock`);
    const err = await gone.listVolumes({}, 'hostvol prune').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DockerUnreachableError);
    expect((err as Error).message).toBe(`hostvol prune needs dockerd, which does not answer at ${s.engine.base}/nothing.sock (ENOENT); start dockerd, or point --docker-host or DOCKER_HOST at its socket (unix:///path)`);
    await gone.close();
  });
});
