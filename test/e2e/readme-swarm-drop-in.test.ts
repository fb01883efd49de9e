// The README's Swarm drop-in block (host-service install). What the harness can run of it, it runs; what
// it cannot:
// - `install -D … /etc/systemd/system/docker.service.d/hostvol.conf` runs verbatim, in the engine's mount
//   namespace, onto a private overlay of /etc/systemd/system, so the machine's /etc is never written.
// - `systemctl daemon-reload && systemctl restart docker` needs systemd as PID 1, which the test machine
//   does not have (nor the drop-in's Wants=/After=hostvol.service ordering). The test does what systemd
//   would: restart dockerd, then run the *installed* file's ExecStartPost with /bin/sh, in dockerd's mount
//   namespace, and checks the effect the README promises: dockerd has activated hostvol, so it lists hostvol
//   among its volume plugins (`docker info`, the same list the Swarm agent sends the scheduler).
// That Swarm then places a pending task within a node update is test/e2e/swarm.test.ts's part.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DRIVER, REPO, calls, e2eSuite, run } from './harness';
import { blockCommands, inEngineNs, privateOverlay, readmeBlock, runReadmeScript } from './lib/readme';

const s = e2eSuite();
const DROP_IN = '/etc/systemd/system/docker.service.d/hostvol.conf';
let undoOverlay: () => Promise<void>;

beforeAll(async () => {
  undoOverlay = await privateOverlay(s.engine, '/etc/systemd/system');
});

/** The volume plugins dockerd has activated, as it reports them to `docker info` and to Swarm. */
const volumePlugins = async (): Promise<string[]> =>
  JSON.parse((await s.docker(['info', '--format', '{{json .Plugins.Volume}}'])).stdout);

describe('Swarm drop-in, as the README installs it', () => {
  // Inside the describe block, so it runs before the harness's teardown (a top-level afterAll runs after it).
  afterAll(async () => {
    await undoOverlay?.();
  });

  s.scenario('install puts the shipped drop-in in place; its ExecStartPost after a dockerd restart activates hostvol', async () => {
    const [install, restart] = readmeBlock('swarm-drop-in').split('\n');
    expect(blockCommands(`${install}\n${restart}`)).toEqual([
      `install -D -m 0644 deploy/docker.service.d/hostvol.conf ${DROP_IN}`,
      'systemctl daemon-reload && systemctl restart docker',
    ]);

    await runReadmeScript(s.engine, 'swarm-drop-in line 1', install);
    const installed = inEngineNs(s.engine, DROP_IN);
    expect(fs.readFileSync(installed, 'utf8')).toBe(fs.readFileSync(path.join(REPO, 'deploy/docker.service.d/hostvol.conf'), 'utf8'));
    expect(fs.statSync(installed).mode & 0o7777).toBe(0o644);

    // `systemctl restart docker`: a fresh dockerd with no hostvol volume has not activated hostvol ...
    expect((await s.docker(['volume', 'ls', '-q'])).stdout).toBe('');
    await s.engine.restartDaemon();
    const mark = await s.hv.mark();
    expect(await volumePlugins()).not.toContain(DRIVER);
    // ... until the installed drop-in's ExecStartPost has run (the leading "-" is systemd's, not the shell's)
    const m = /^ExecStartPost=-?(\S+) -c '([^']*)'$/m.exec(fs.readFileSync(installed, 'utf8'));
    if (!m) throw new Error(`${DROP_IN} has no ExecStartPost=… -c '…' line`);
    const [cmd, ...args] = s.engine.nsenter();
    await run(cmd, [...args, m[1], '-c', m[2]], { env: s.engine.env() });
    expect(await volumePlugins()).toContain(DRIVER);
    expect(calls(await s.hv.since(mark), 'Activate')).toHaveLength(1);
  }, 120_000);
});
