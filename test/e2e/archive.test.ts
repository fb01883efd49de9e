// export, import and clone against real engines: a volume moved from one engine to another through a
// pipe (`hostvol export v - | hostvol import v --create -`, as over ssh), and --pause pausing the
// container that writes to a volume for the length of an export, then unpausing it.
import * as path from 'node:path';
import { expectSameTree, snapshot } from '../unit/archive-tree';
import { BB_IMAGE, CLI_JS, DRIVER, IDLE, RUN, e2eSuite, run, uniq } from './harness';

const a = e2eSuite();
const b = e2eSuite();

type S = typeof a;
const hostvol = (s: S, ...args: string[]) =>
  run(process.execPath, [CLI_JS, ...args, '--admin-socket', s.hv.adminSocket], { env: s.engine.env(), allowFail: true, timeoutMs: 120_000 });
/** `hostvol …` on `s` as a shell word list, with that engine's dockerd and admin socket. */
const cli = (s: S, args: string) => `DOCKER_HOST=unix://${s.engine.sock} ${process.execPath} ${CLI_JS} ${args} --admin-socket ${s.hv.adminSocket}`;

a.scenario('a volume moves to another engine through a pipe: export | import --create, same tree, dockerd knows it', async () => {
  const v = uniq('mv');
  await a.docker(['volume', 'create', '-d', DRIVER, v]);
  await a.docker(['run', '--rm', ...RUN, '-v', `${v}:/d`, BB_IMAGE, 'sh', '-ec',
    'mkdir -p /d/sub && echo hello > /d/sub/f && ln /d/sub/f /d/hard && ln -s sub/f /d/link && chown -R 1234:5678 /d/sub && chmod 1750 /d/sub && mkfifo /d/fifo && head -c 300000 /dev/urandom > /d/big']);
  const r = await run('/bin/sh', ['-c', `${cli(a, `export ${v} - --compress zstd`)} | ${cli(b, `import ${v} --create -`)}`], { allowFail: true, timeoutMs: 120_000 });
  expect(r).toMatchObject({ code: 0 });
  expect(r.stderr).toMatch(new RegExp(`imported \\d+ entries .* into volume ${v}`));
  expect((await b.docker(['volume', 'ls', '-q'])).stdout.split('\n')).toContain(v);
  expectSameTree(await snapshot(path.join(b.hv.dataRoot, v)), await snapshot(path.join(a.hv.dataRoot, v)));
  // A second import of the same name is refused (it exists), and leaves it alone.
  const again = await run('/bin/sh', ['-c', `${cli(a, `export ${v} -`)} | ${cli(b, `import ${v} --create -`)}`], { allowFail: true });
  expect(again.code).toBe(1);
  expect(again.stderr).toMatch(new RegExp(`volume "${v}" already exists; import into it without --create`));
}, 240_000);

a.scenario('a volume written by a running container: refused, then --pause pauses it during the export and unpauses it', async () => {
  const v = uniq('pz');
  await a.docker(['volume', 'create', '-d', DRIVER, v]);
  await a.docker(['run', '-d', ...RUN, '--name', `${v}-w`, '-v', `${v}:/d`, BB_IMAGE, ...IDLE]);
  const refused = await hostvol(a, 'export', v, path.join(a.engine.base, `${v}.tar`));
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain(`volume "${v}" is mounted read-write by running container(s) ${v}-w; use --pause`);
  const since = Math.floor(Date.now() / 1000) - 1;
  const file = path.join(a.engine.base, `${v}.tar`);
  const ok = await hostvol(a, 'export', v, file, '--pause');
  expect(ok).toMatchObject({ code: 0, stdout: '' });
  const events = await a.docker(['events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', `container=${v}-w`, '--format', '{{.Action}}']);
  expect(events.stdout.split('\n').filter((x) => x === 'pause' || x === 'unpause')).toEqual(['pause', 'unpause']);
  expect((await a.docker(['inspect', '-f', '{{.State.Status}}', `${v}-w`])).stdout.trim()).toBe('running');
  const listed = await run('/usr/bin/tar', ['-tf', file]);
  expect(listed.stdout.split('\n')).toContain('./');
  await a.docker(['rm', '-f', `${v}-w`]);
}, 180_000);

b.scenario('clone makes a new volume through dockerd with the same content', async () => {
  const [src, dst] = [uniq('cs'), uniq('cd')];
  await b.docker(['volume', 'create', '-d', DRIVER, src]);
  await b.docker(['run', '--rm', ...RUN, '-v', `${src}:/d`, BB_IMAGE, 'sh', '-ec', 'echo x > /d/a && ln -s a /d/b && chown 7:8 /d/a']);
  const r = await hostvol(b, 'clone', src, dst);
  expect(r).toMatchObject({ code: 0, stdout: '' });
  expect((await b.docker(['volume', 'inspect', '-f', '{{.Driver}}', dst])).stdout.trim()).toBe(DRIVER);
  expectSameTree(await snapshot(path.join(b.hv.dataRoot, dst)), await snapshot(path.join(b.hv.dataRoot, src)));
  // dockerd's create would hand back the existing volume: a clone onto a name in use is refused instead.
  const again = await hostvol(b, 'clone', src, dst);
  expect(again).toMatchObject({ code: 1, stderr: `hostvol: volume "${dst}" already exists; give a new name, or remove it first\n` });
}, 120_000);
