// Ctrl-C leaves nothing half-done: SIGINT to export, import --create and clone while their data is in
// flight. Each command is frozen mid-way at a point the test picks (the import's input is a pipe the
// test writes half an archive into; export and clone talk through a HoldProxy that holds the reply),
// so the signal always lands mid-operation. Afterwards: no paused container, no partial archive, no
// volume in dockerd or hostvol, no staging directory beside the volumes.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BB_IMAGE, CLI_JS, DRIVER, IDLE, RUN, e2eSuite, run, uniq } from './harness';
import { HoldProxy } from './lib/hold-proxy';
import { waitFor } from './lib/proc';

const s = e2eSuite();

/** `hostvol ARGS` started in the background, for the test to signal and feed; `done` is its outcome. */
function start(args: string[], env: NodeJS.ProcessEnv = s.engine.env()) {
  const child = spawn(process.execPath, [CLI_JS, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  child.stdin.on('error', () => undefined);
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stderr })));
  return { child, done, stderr: () => stderr };
}

/** What is left of volume `v`: in dockerd, in hostvol, its directory and staging directories beside it. */
async function leftovers(v: string): Promise<string[]> {
  const out: string[] = [];
  if ((await s.docker(['volume', 'ls', '-q'])).stdout.split('\n').includes(v)) out.push('dockerd volume');
  const ls = await run(process.execPath, [CLI_JS, 'ls', '--format', 'json', '--admin-socket', s.hv.adminSocket], { env: s.engine.env() });
  if (JSON.parse(ls.stdout).some((x: { name: string }) => x.name === v)) out.push('hostvol volume');
  for (const e of fs.readdirSync(s.hv.dataRoot)) if (e === v || e.startsWith(`.${v}.hostvol-`)) out.push(e);
  return out;
}

const stateOf = async (c: string) => (await s.docker(['inspect', '-f', '{{.State.Status}}', c])).stdout.trim();

/** A volume with `mb` MB of incompressible data, written by a container that keeps it mounted rw. */
async function writtenVolume(v: string, mb: number): Promise<string> {
  await s.docker(['volume', 'create', '-d', DRIVER, v]);
  await s.docker(['run', '-d', ...RUN, '--name', `${v}-w`, '-v', `${v}:/d`, BB_IMAGE, ...IDLE]);
  await s.docker(['exec', `${v}-w`, 'sh', '-c', `mkdir /d/sub && head -c ${mb}000000 /dev/urandom > /d/sub/big && echo small > /d/a`]);
  return `${v}-w`;
}

s.scenario('SIGINT to export --pause mid-stream: the container runs again, no archive and no temporary file are left', async () => {
  const v = uniq('ie');
  const writer = await writtenVolume(v, 8);
  const proxy = new HoldProxy(path.join(s.engine.base, 'admin-hold.sock'), s.hv.adminSocket, /GET \/volumes\/[^ ]+\/export/, 64 << 10);
  await proxy.listen();
  const outDir = fs.mkdtempSync(path.join(s.engine.base, 'out-'));
  try {
    const cli = start(['export', v, path.join(outDir, 'v.tar'), '--pause', '--admin-socket', proxy.path]);
    await proxy.holding();
    await waitFor('the partial archive', () => fs.readdirSync(outDir).some((f) => fs.statSync(path.join(outDir, f)).size > 0));
    expect(await stateOf(writer)).toBe('paused');
    cli.child.kill('SIGINT');
    const r = await cli.done;
    expect(r.stderr).toContain(`export of volume "${v}" interrupted; no archive written`);
    expect(r.code).toBe(130);
    expect(fs.readdirSync(outDir)).toEqual([]);
    expect(await stateOf(writer)).toBe('running');
  } finally {
    await proxy.close();
  }
  await s.docker(['rm', '-f', writer]);
  await s.docker(['volume', 'rm', v]);
}, 120_000);

s.scenario('SIGINT to import --create mid-stream: no volume in dockerd or hostvol, no staging directory', async () => {
  const src = fs.mkdtempSync(path.join(s.engine.base, 'src-'));
  fs.mkdirSync(path.join(src, 'sub'));
  for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(src, 'sub', `f${i}`), Buffer.alloc(1 << 20, i));
  const archive = (await run('/usr/bin/tar', ['-C', src, '-cf', path.join(s.engine.base, 'in.tar'), '.'])) && fs.readFileSync(path.join(s.engine.base, 'in.tar'));
  const v = uniq('ii');
  const cli = start(['import', v, '-', '--create', '--admin-socket', s.hv.adminSocket]);
  // Half the archive, and the pipe stays open: the import waits for the rest.
  cli.child.stdin.write(archive.subarray(0, archive.length >> 1));
  await waitFor('the import to extract into its staging directory', () =>
    fs.readdirSync(s.hv.dataRoot).some((e) => e.startsWith(`.${v}.hostvol-`) && fs.existsSync(path.join(s.hv.dataRoot, e, 'sub', 'f0'))),
  );
  cli.child.kill('SIGINT');
  const r = await cli.done;
  expect(r.stderr).toMatch(/interrupted/);
  expect(r.code).toBe(130);
  cli.child.stdin.destroy();
  // The daemon removes the staging directory when it sees the request go; the CLI removed the volume.
  await waitFor('nothing left of the import', async () => (await leftovers(v)).length === 0, 20_000).catch(async () => {
    throw new Error(`left after the interrupted import: ${(await leftovers(v)).join(', ')}`);
  });
}, 120_000);

s.scenario('SIGINT to clone --pause while dockerd creates the copy: the copy is removed again, the source\'s writer runs', async () => {
  const src = uniq('ic');
  const dst = `${src}-copy`;
  const writer = await writtenVolume(src, 4);
  const proxy = new HoldProxy(path.join(s.engine.base, 'docker-hold.sock'), s.engine.sock, /POST \/(v[\d.]+\/)?volumes\/create /, 0);
  await proxy.listen();
  try {
    const cli = start(['clone', src, dst, '--pause', '--admin-socket', s.hv.adminSocket, '--docker-host', `unix://${proxy.path}`]);
    await proxy.requested();
    expect(await stateOf(writer)).toBe('paused');
    cli.child.kill('SIGINT');
    await waitFor('the clone to say it was interrupted', () => /interrupted/.test(cli.stderr()));
    proxy.release(); // dockerd's answer to the create, which the CLI must wait for to undo it
    const r = await cli.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toContain(`clone of volume "${src}" interrupted; volume ${dst} removed`);
  } finally {
    await proxy.close();
  }
  expect(await leftovers(dst)).toEqual([]);
  expect(await stateOf(writer)).toBe('running');
  await s.docker(['rm', '-f', writer]);
  await s.docker(['volume', 'rm', src]);
}, 120_000);
