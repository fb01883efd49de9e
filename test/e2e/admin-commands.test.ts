// hostvol's admin commands against a real dockerd and a legacy hostvol: ls, inspect (with the
// containers dockerd says use a volume), df, prune (through dockerd, exactly the dangling hostvol
// volumes, anonymous ones unless --all), leases and release after a lost Unmount, and doctor.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AdminClient } from '../../src/commands/client';
import { BB_IMAGE, CLI_JS, DRIVER, IDLE, RUN, e2eSuite, run, uniq } from './harness';

const s = e2eSuite();

/** `hostvol ARGS` as an operator runs it on this host: dockerd from DOCKER_HOST, the admin socket given. */
const hostvol = (...args: string[]) =>
  run(process.execPath, [CLI_JS, ...args, '--admin-socket', s.hv.adminSocket], { env: s.engine.env(), allowFail: true, timeoutMs: 60_000 });
const json = async (...args: string[]) => {
  const r = await hostvol(...args, '--format', 'json');
  if (r.code !== 0) throw new Error(`hostvol ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout);
};
const dockerVolumes = async () => (await s.docker(['volume', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
const startIdle = (name: string, ...mounts: string[]) =>
  s.docker(['run', '-d', ...RUN, '--name', name, ...mounts.flatMap((m) => ['-v', m]), BB_IMAGE, ...IDLE]);

describe('ls, inspect, df', () => {
  s.scenario('inspect shows the containers dockerd says use a volume, rw or ro, and their state', async () => {
    const v = uniq('ai');
    await s.docker(['volume', 'create', '-d', DRIVER, v]);
    await startIdle(`${v}-rw`, `${v}:/d`);
    await startIdle(`${v}-ro`, `${v}:/r:ro`);
    await s.docker(['pause', `${v}-ro`]);
    await s.docker(['exec', `${v}-rw`, 'sh', '-c', 'head -c 20000 /dev/zero > /d/f']);
    const [d] = await json('inspect', v);
    expect(d.hostPath).toBe(path.join(s.hv.dataRoot, v));
    expect(d.containers.map((c: any) => [c.name, c.state, c.rw, c.destination]).sort()).toEqual([
      [`${v}-ro`, 'paused', false, '/r'],
      [`${v}-rw`, 'running', true, '/d'],
    ]);
    expect(d.mountVisible).toBe(true); // hostvol sees the containers' mount namespaces
    expect(d.leases).toHaveLength(2);
    expect(d.size.apparentBytes).toBeGreaterThanOrEqual(20_000);
    const human = await hostvol('inspect', v);
    expect(human.stdout).toMatch(new RegExp(`^ {2}${v}-rw {2}running {2}rw {2}at /d$`, 'm'));
    await s.docker(['unpause', `${v}-ro`]);
    await s.docker(['rm', '-f', `${v}-rw`, `${v}-ro`]);
    expect((await json('inspect', v))[0].containers).toEqual([]);
    await s.docker(['volume', 'rm', v]);
  }, 120_000);

  s.scenario('ls and df list the volume dockerd created through hostvol', async () => {
    const v = uniq('al');
    await s.docker(['volume', 'create', '-d', DRIVER, v]);
    fs.writeFileSync(path.join(s.hv.dataRoot, v, 'f'), Buffer.alloc(3000, 1));
    expect((await json('ls')).map((x: any) => x.name)).toContain(v);
    const df = await json('df', v);
    expect(df.volumes).toEqual([expect.objectContaining({ name: v, inodes: 2, apparentBytes: 3000 + fs.statSync(path.join(s.hv.dataRoot, v)).size })]);
    expect(df.filesystems[0].freeBytes).toBeGreaterThan(0);
    await s.docker(['volume', 'rm', v]);
  });
});

describe('prune removes dangling hostvol volumes through dockerd', () => {
  s.scenario('anonymous only by default, named ones with --all, in-use and local volumes never; --dry-run removes nothing', async () => {
    const named = uniq('pn');
    const busy = uniq('pb');
    const local = uniq('plocal');
    // Everything this test makes carries its own label, and every prune is narrowed to it: other tests' volumes are not its business.
    const scope = ['--label', `scope=${named}`];
    const only = ['--filter', `label=scope=${named}`];
    await s.docker(['volume', 'create', '-d', DRIVER, ...scope, named]);
    await s.docker(['volume', 'create', '-d', DRIVER, ...scope, busy]);
    await s.docker(['volume', 'create', ...scope, local]);
    const anon = (await s.docker(['volume', 'create', '-d', DRIVER, ...scope])).stdout.trim();
    expect(anon).toMatch(/^[0-9a-f]{64}$/);
    fs.writeFileSync(path.join(s.hv.dataRoot, anon, 'data'), Buffer.alloc(50_000, 1));
    await startIdle(`${busy}-c`, `${busy}:/d`);

    const dry = await json('prune', '--dry-run', ...only);
    expect(dry.volumes.map((p: any) => p.name)).toEqual([anon]);
    expect(dry.reclaimedBytes).toBeGreaterThanOrEqual(50_000);
    expect(await dockerVolumes()).toContain(anon);

    const r = await hostvol('prune', ...only);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Deleted Volumes:\\n${anon} \\S+B\\n\\nTotal reclaimed space: \\S+B\\n$`));
    expect(await dockerVolumes()).not.toContain(anon);
    expect(fs.existsSync(path.join(s.hv.dataRoot, anon))).toBe(false);

    const all = await json('prune', '--all', ...only);
    expect(all.volumes.map((p: any) => p.name)).toEqual([named]);
    const left = await dockerVolumes();
    expect(left).toEqual(expect.arrayContaining([busy, local]));
    expect(left).not.toContain(named);
    await s.docker(['rm', '-f', `${busy}-c`]);
    await s.docker(['volume', 'rm', busy, local]);
  }, 120_000);

  s.scenario('--filter label=K[=V] narrows to volumes with that label', async () => {
    const [a, b] = [uniq('pla'), uniq('plb')];
    const tier = `tier-${a}`; // a key no other test uses
    await s.docker(['volume', 'create', '-d', DRIVER, '--label', `${tier}=cache`, a]);
    await s.docker(['volume', 'create', '-d', DRIVER, '--label', `${tier}=db`, b]);
    expect((await json('prune', '--all', '--dry-run', '--filter', `label=${tier}=cache`)).volumes.map((p: any) => p.name)).toEqual([a]);
    expect((await json('prune', '--all', '--filter', `label=${tier}`)).volumes.map((p: any) => p.name).sort()).toEqual([a, b].sort());
    expect(await dockerVolumes()).not.toEqual(expect.arrayContaining([a]));
  });
});

describe('leases, release and doctor', () => {
  s.scenario('a lease is refused release while its container runs; once its Unmount is lost, it shows unmounted and --stale releases it', async () => {
    const v = uniq('lr');
    await s.docker(['volume', 'create', '-d', DRIVER, v]);
    await startIdle(`${v}-c`, `${v}:/d`);
    const [held] = await json('leases', v);
    expect(held).toMatchObject({ volume: v, mountVisible: true });
    const id = held.leases[0].id;
    // The CLI asks dockerd first; hostvol's admin API judges from the host's mount tables on its own.
    const refused = await hostvol('release', v, '--id', id);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`hostvol: volume "${v}": not released: dockerd says ${v}-c (running) uses it; stop the container first, or pass --force if you know the lease is not its\n`);
    const admin = new AdminClient(s.hv.adminSocket);
    await expect(admin.json('POST', `/leases/${v}/release`, { id })).rejects.toThrow(
      `volume "${v}": lease(s) ${id} not released: a container still has the volume mounted; stop the container first, or pass --force if you know none uses it`,
    );
    await admin.close();

    // The Unmount is lost: hostvol is down while the container goes away.
    await s.hv.stop();
    try {
      await s.docker(['rm', '-f', `${v}-c`]);
    } finally {
      await s.hv.start();
    }
    const [lost] = await json('leases', v);
    expect(lost.mountVisible).toBe(false);
    expect(lost.leases.map((l: any) => l.id)).toEqual([id]);
    const released = await hostvol('release', v, '--stale');
    expect(released.stdout).toBe(`released ${v} ${id}\n`);
    expect((await json('leases', v))[0].leases).toEqual([]);
    await s.docker(['volume', 'rm', v]);
  }, 120_000);

  s.scenario('doctor names a hostvol volume dockerd shows under another driver, and --fix leaves it', async () => {
    const v = uniq('dk');
    await s.docker(['volume', 'create', v]); // a local volume of that name first
    // Then hostvol's, created on its socket directly as another client would: dockerd shows one per name.
    expect(await s.hv.call('/VolumeDriver.Create', { Name: v })).toEqual({});
    for (const args of [['doctor'], ['doctor', '--fix']]) {
      const r = await hostvol(...args);
      expect(r.stdout).toMatch(new RegExp(`^unknown-to-dockerd\\s+${v}\\s+dockerd shows a volume of driver local under this name instead`, 'm'));
      expect(r.code).toBe(2);
    }
    await s.docker(['volume', 'rm', v]);
    expect(await s.hv.call('/VolumeDriver.Remove', { Name: v })).toEqual({});
  });
});
