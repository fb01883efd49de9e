// The README's "Operating volumes" blocks, run verbatim against a private engine and a hostvol started
// with no flags (default plugin socket, data root and admin socket /run/hostvol/admin.sock, each made
// private to the engine's namespace), in the README's order, with `hostvol` on PATH as `npm install -g`
// puts it. What each block's comments claim is checked on its output.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BB_IMAGE, CLI_JS, e2eSuite, run } from './harness';
import { privateHostDirs, runReadmeBlock, serveInEngine } from './lib/readme';

const s = e2eSuite({ hostvol: false });
/** The other host of admin-move: a second engine with its own hostvol, reached through an `ssh` stand-in. */
const host2 = e2eSuite();
let undoHostDirs: () => Promise<void>;
const savedPath = process.env.PATH;
/** The volume the blocks share: created by the first block, made here too so that each test also runs alone. */
const ensureWeb = () => s.docker(['volume', 'create', '-d', 'hostvol', 'web']);
const nsRun = (script: string) => {
  const ns = s.engine.nsenter(false);
  return run(ns[0], [...ns.slice(1), 'sh', '-ec', script]);
};

beforeAll(async () => {
  undoHostDirs = await privateHostDirs(s.engine);
  // /run is the host's: the default admin socket's directory gets a tmpfs of its own in the engine's namespace.
  await nsRun('mkdir -p /run/hostvol && mount -t tmpfs runhostvol /run/hostvol');
  await s.docker(['tag', BB_IMAGE, 'busybox']);
  await serveInEngine(s.engine, [process.execPath, CLI_JS, 'serve'], { PATH: process.env.PATH }, 'readme-admin-hostvol.log');
  const bin = path.join(s.engine.base, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'hostvol'), `#!/bin/sh\nexec ${process.execPath} ${CLI_JS} "$@"\n`, { mode: 0o755 });
  // `ssh host2 CMD…` runs CMD as ssh would (its words joined, through a shell), with host2's dockerd and hostvol.
  const host2Env = `DOCKER_HOST=unix://${host2.engine.sock} HOSTVOL_ADMIN_SOCKET=${host2.hv.adminSocket}`;
  fs.writeFileSync(path.join(bin, 'ssh'), `#!/bin/sh\n[ "$1" = host2 ] || { echo "ssh: no host $1" >&2; exit 255; }\nshift\nexec env ${host2Env} sh -c "$*"\n`, { mode: 0o755 });
  process.env.PATH = `${bin}:${savedPath}`; // engine.env() copies it into every block's environment
}, 120_000);

describe('README: operating volumes', () => {
  afterAll(async () => {
    process.env.PATH = savedPath;
    await s.docker(['rm', '-f', 'web1'], { allowFail: true });
    await s.docker(['volume', 'rm', '-f', 'web'], { allowFail: true });
    await nsRun('umount -l /run/hostvol || true');
    await undoHostDirs?.();
  });

  s.scenario('admin-inspect: ls and inspect show the volume, and the container using it from dockerd', async () => {
    const out = (await runReadmeBlock(s.engine, 'admin-inspect')).stdout;
    expect(out).toMatch(/^NAME\s+STATE\s+LEASES\s+NODES\s+HOST PATH$/m);
    expect(out).toMatch(/^web\s+ready\s+1\s+\S+\s+\/var\/lib\/hostvol\/volumes\/web$/m);
    expect(out).toMatch(/^Host path: +\/var\/lib\/hostvol\/volumes\/web$/m);
    expect(out).toMatch(/^ {2}web1 {2}running {2}rw {2}at \/srv$/m);
    expect(out).toMatch(/^Mounted in a container on this node \(\S+\): yes$/m);
  }, 120_000);

  s.scenario('admin-archive: export to a file, import it into a new volume, clone; the copies hold what web holds', async () => {
    await ensureWeb();
    await nsRun('printf hello > /var/lib/hostvol/volumes/web/greeting');
    await runReadmeBlock(s.engine, 'admin-archive');
    const vols = (await s.docker(['volume', 'ls', '-q'])).stdout.split('\n');
    expect(vols).toEqual(expect.arrayContaining(['web-copy', 'web-clone']));
    const read = await nsRun('cat /var/lib/hostvol/volumes/web-copy/greeting /var/lib/hostvol/volumes/web-clone/greeting');
    expect(read.stdout).toBe('hellohello');
    await s.docker(['volume', 'rm', 'web-copy', 'web-clone']);
  }, 120_000);

  s.scenario('admin-move: web goes to host2 through a pipe; host2\'s dockerd knows it, with web\'s content', async () => {
    await ensureWeb();
    await nsRun('printf moved > /var/lib/hostvol/volumes/web/travel');
    const r = await runReadmeBlock(s.engine, 'admin-move');
    expect(r.stderr).toMatch(/^imported \d+ entries .* into volume web$/m);
    expect((await host2.docker(['volume', 'inspect', '-f', '{{.Driver}}', 'web'])).stdout.trim()).toBe('hostvol');
    expect(fs.readFileSync(path.join(host2.hv.dataRoot, 'web', 'travel'), 'utf8')).toBe('moved');
    await host2.docker(['volume', 'rm', 'web']);
    await nsRun('rm /var/lib/hostvol/volumes/web/travel');
  }, 120_000);

  s.scenario('admin-from: docker volume create -o from=web makes a copy of web', async () => {
    await ensureWeb();
    await nsRun('printf snap > /var/lib/hostvol/volumes/web/snap');
    await runReadmeBlock(s.engine, 'admin-from');
    expect((await s.docker(['volume', 'inspect', '-f', '{{.Driver}}', 'web-snapshot'])).stdout.trim()).toBe('hostvol');
    expect((await nsRun('cat /var/lib/hostvol/volumes/web-snapshot/snap')).stdout).toBe('snap');
    await s.docker(['volume', 'rm', 'web-snapshot']);
    await nsRun('rm /var/lib/hostvol/volumes/web/snap');
  }, 120_000);

  s.scenario('admin-df: per volume, total, file systems; JSON for one volume', async () => {
    await ensureWeb();
    // (No file is written into web here: on this test's private /var/lib, an overlay over another file
    // system, files report the upper layer's st_dev, so the one-file-system walk would not count them.)
    const out = (await runReadmeBlock(s.engine, 'admin-df')).stdout;
    expect(out).toMatch(/^web\s+\S+B\s+\S+B\s+1$/m);
    expect(out).toMatch(/^TOTAL\s/m);
    expect(out).toMatch(/^FILESYSTEM OF\s+FREE/m);
    const json = JSON.parse(out.slice(out.indexOf('{')));
    expect(json.volumes).toEqual([expect.objectContaining({ name: 'web', path: '/var/lib/hostvol/volumes/web', inodes: 1 })]);
  });

  s.scenario('admin-prune: the anonymous volume is listed by --dry-run, then removed through dockerd', async () => {
    const out = (await runReadmeBlock(s.engine, 'admin-prune')).stdout;
    const anon = out.split('\n')[0];
    expect(anon).toMatch(/^[0-9a-f]{64}$/);
    expect(out).toMatch(new RegExp(`^Would remove:\n${anon} (\\S+B)\n\nTotal reclaimable space: \\1\n`, 'm'));
    expect(out).toMatch(new RegExp(`^Deleted Volumes:\n${anon} (\\S+B)\n\nTotal reclaimed space: \\1\n`, 'm'));
    expect(out).toMatch(/Deleted Volumes:\n\nTotal reclaimed space: 0B\n$/); // nothing labelled env=ci
    expect((await s.docker(['volume', 'ls', '-q'])).stdout.split('\n')).not.toContain(anon);
    expect((await s.docker(['volume', 'ls', '-q'])).stdout.split('\n')).toContain('web');
  });

  s.scenario('admin-leases: no lease left once web1 is gone; release --stale has nothing to drop', async () => {
    await ensureWeb();
    const out = (await runReadmeBlock(s.engine, 'admin-leases')).stdout;
    expect(out).toBe('VOLUME  NODE  ID  COUNT  GENERATION  STALE  MOUNTED\nweb: no lease to release\n');
  });

  s.scenario('admin-doctor: a clean install has nothing to report or fix', async () => {
    expect((await runReadmeBlock(s.engine, 'admin-doctor')).stdout).toBe('no problems found\nno problems found\n');
  });

  s.scenario('admin-metrics: the lease gauge on the admin socket', async () => {
    expect((await runReadmeBlock(s.engine, 'admin-metrics')).stdout).toBe('hostvol_leases 0\n');
  });
});
