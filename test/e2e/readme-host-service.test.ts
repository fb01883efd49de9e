// Issue 11: the README's host-service block. What the harness can run of it, it runs; what it cannot:
// - `npm install -g --prefix /usr/local .` writes the machine's /usr/local, which a test must not touch;
//   the test checks instead that the unit's ExecStart is the command that install puts on PATH
//   (`<prefix>/bin/hostvol`, package.json's `bin.hostvol`, i.e. dist/cli.js). The prefix is explicit
//   because Debian's npm has /usr as its global prefix: a plain `npm install -g .` put hostvol in
//   /usr/bin, where the unit's ExecStart=/usr/local/bin/hostvol does not look (found by this test).
// - `install … /etc/systemd/system/` and `systemctl daemon-reload && systemctl enable --now hostvol` need
//   systemd as PID 1, which the test machine does not have; the test starts ExecStart itself, with the
//   unit's Environment= lines, inside the engine's mount namespace, as systemd would start it on the host.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BB_IMAGE, REPO, RUN, e2eSuite, waitFor } from './harness';
import { inEngineNs, privateHostDirs, readmeBlock } from './lib/readme';
import { isAlive, run, terminate } from './lib/proc';

const s = e2eSuite({ hostvol: false });
let undoHostDirs: () => Promise<void>;

beforeAll(async () => {
  undoHostDirs = await privateHostDirs(s.engine);
});

/** The unit's [Service] ExecStart and Environment= lines (commented ones are examples, not settings). */
function unit(): { execStart: string[]; env: Record<string, string> } {
  const text = fs.readFileSync(path.join(REPO, 'deploy/hostvol.service'), 'utf8');
  const execStart = /^ExecStart=(.+)$/m.exec(text)![1].trim().split(/\s+/);
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)) env[m[1]] = m[2];
  return { execStart, env };
}

describe('host service, as the README installs it', () => {
  // Inside the describe block, so it runs before the harness's teardown (a top-level afterAll runs after it).
  afterAll(async () => {
    await s.docker(['volume', 'rm', '-f', 'svc'], { allowFail: true });
    await undoHostDirs?.();
  });

  s.scenario('the block, its unit and ExecStart: dockerd finds hostvol on the default socket and the data is in /var/lib/hostvol', async () => {
    const block = readmeBlock('host-service');
    const commands = block.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim());
    expect(commands).toEqual([
      'make build && npm install -g --prefix /usr/local .',
      'install -m 0644 deploy/hostvol.service /etc/systemd/system/',
      'systemctl daemon-reload && systemctl enable --now hostvol',
    ]);
    // `make build`, the part of the first line a test may run
    const built = await run('make', ['build'], { cwd: REPO, env: { ...process.env, MAKEFLAGS: '-o node_modules/.installed' }, allowFail: true });
    expect(built.stderr).toBe('');
    // what `npm install -g --prefix /usr/local .` puts on PATH is what the unit starts
    const prefix = /--prefix (\S+)/.exec(commands[0])![1];
    const { execStart, env } = unit();
    const bin = require(path.join(REPO, 'package.json')).bin.hostvol as string;
    expect(execStart[0]).toBe(path.join(prefix, 'bin', 'hostvol'));
    expect(bin).toBe('dist/cli.js');
    expect(fs.readFileSync(path.join(REPO, bin), 'utf8').startsWith('#!/usr/bin/env node')).toBe(true);

    // systemctl enable --now: ExecStart with the unit's environment, in dockerd's mount namespace
    const argv = [...s.engine.nsenter(false), path.join(REPO, bin), ...execStart.slice(1)];
    const log = fs.openSync(path.join(s.engine.base, 'service.log'), 'a');
    const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', log, log], env: { ...process.env, ...env } });
    fs.closeSync(log);
    child.unref();
    const pid = child.pid!;
    s.engine.addFinalizer(async () => {
      await terminate(pid, 10_000);
      fs.rmSync(path.join(s.engine.pluginDirs.run, 'hostvol.sock'), { force: true });
    });
    await waitFor('hostvol.sock', () => {
      if (!isAlive(pid)) throw new Error(fs.readFileSync(path.join(s.engine.base, 'service.log'), 'utf8'));
      return fs.existsSync(path.join(s.engine.pluginDirs.run, 'hostvol.sock'));
    }, 20_000);

    await s.docker(['volume', 'create', '-d', 'hostvol', 'svc']);
    await s.docker(['run', '--rm', ...RUN, '-v', 'svc:/d', BB_IMAGE, 'sh', '-c', 'echo service > /d/f']);
    const state = inEngineNs(s.engine, '/var/lib/hostvol');
    expect(fs.readFileSync(path.join(state, 'volumes', 'svc', 'f'), 'utf8')).toBe('service\n');
    expect(fs.readFileSync(path.join(state, 'store-id'), 'utf8')).toMatch(/^[0-9a-f]{32}\n$/);
    const rows = (await s.docker(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).stdout.split('\n');
    expect(rows).toContain('hostvol svc');
  }, 180_000);
});
