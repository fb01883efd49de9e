// Self-test of the e2e harness: isolation of the private engine, the test images, and a teardown that
// leaves nothing behind (with the built-in `local` driver and with hostvol).
import * as fs from 'node:fs';
import {
  BB_IMAGE, DRIVER, IDLE, RUN, SEED_FILES, SEED_IMAGE, cgroupDirs, e2eSuite, isAlive, mountPoints, readPid, run,
  startEngine, startHostvol, uniq,
} from './harness';

const s = e2eSuite({ hostvol: false });

async function hostLinks(): Promise<string> {
  return (await run('/bin/busybox', ['ip', '-o', 'link'])).stdout.replace(/\s+qlen \d+/g, '');
}

describe('harness', () => {
  s.scenario('engine runs in a private mount and network namespace with private plugin directories', async () => {
    const e = s.engine;
    expect(e.ns).toMatch(/^mnt:\[\d+\]$/);
    expect(e.ns).not.toBe(fs.readlinkSync('/proc/self/ns/mnt'));
    expect(fs.readlinkSync(`/proc/${e.dockerdPid}/ns/mnt`)).toBe(e.ns);
    expect(fs.readlinkSync(`/proc/${e.dockerdPid}/ns/net`)).not.toBe(fs.readlinkSync('/proc/self/ns/net'));
    // what the daemon sees as /run/docker/plugins is the run's own directory
    fs.writeFileSync(`${e.pluginDirs.run}/marker`, 'x');
    const inside = await run(e.nsenter()[0], [...e.nsenter().slice(1), 'ls', '/run/docker/plugins', '/etc/docker/plugins', '/usr/lib/docker/plugins']);
    expect(inside.stdout).toContain('marker');
    expect(fs.existsSync('/run/docker/plugins/marker')).toBe(false);
    fs.rmSync(`${e.pluginDirs.run}/marker`);
    // only loopback in the daemon's network namespace (so --bridge none cannot touch the host's links)
    const links = await run(e.nsenter(true)[0], [...e.nsenter(true).slice(1), '/bin/busybox', 'ip', '-o', 'link']);
    expect(links.stdout.trim().split('\n').map((l) => l.split(':')[1].trim())).toEqual(['lo']);
    const info = await s.docker(['info', '--format', '{{.DockerRootDir}} {{.CgroupDriver}}']);
    expect(info.stdout.trim()).toBe(`${e.base}/root cgroupfs`);
  });

  s.scenario('bb:latest links every busybox applet and bbseed:latest carries /seed', async () => {
    const applets = (await run('/bin/busybox', ['--list'])).stdout.trim().split('\n').length;
    const r = await s.docker(['run', '--rm', ...RUN, BB_IMAGE, 'sh', '-c', 'ls /bin | wc -l; true; id -u']);
    const [n, uid] = r.stdout.trim().split('\n');
    expect(Number(n)).toBe(applets); // `busybox --list` includes busybox itself
    expect(uid).toBe('0');
    for (const [rel, content] of Object.entries(SEED_FILES)) {
      const c = await s.docker(['run', '--rm', ...RUN, SEED_IMAGE, 'cat', `/${rel}`]);
      expect(c.stdout).toBe(content);
    }
    const t0 = Date.now();
    const missing = await s.docker(['run', '--rm', ...RUN, 'nosuchimage:latest', 'true'], { allowFail: true });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/No such image|not found|Unable to find/i);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  s.scenario('a local volume carries data between containers', async () => {
    const v = uniq('loc');
    await s.docker(['volume', 'create', v]);
    await s.docker(['run', '--rm', ...RUN, '-v', `${v}:/d`, BB_IMAGE, 'sh', '-c', 'echo hello > /d/f']);
    const r = await s.docker(['run', '--rm', ...RUN, '-v', `${v}:/d`, BB_IMAGE, 'cat', '/d/f']);
    expect(r.stdout).toBe('hello\n');
    expect(fs.readFileSync(`${s.engine.base}/root/volumes/${v}/_data/f`, 'utf8')).toBe('hello\n');
    await s.docker(['volume', 'rm', v]);
  });

  s.scenario('teardown of an engine with a running container leaves no process, mount, cgroup or file', async () => {
    const linksBefore = await hostLinks();
    const e = await startEngine();
    try {
      expect(await hostLinks()).toBe(linksBefore);
      await e.docker(['run', '-d', ...RUN, '--name', 'busy', '-v', 'lv:/d', BB_IMAGE, ...IDLE]);
      const containerd = readPid(`${e.base}/exec/containerd/containerd.pid`);
      const dockerd = e.dockerdPid;
      const pidsInCgroup = cgroupDirs(e.cgroupName);
      expect(pidsInCgroup.length).toBeGreaterThan(0);
      expect(isAlive(containerd)).toBe(true);
      const notes = await e.teardown();
      expect(notes.filter((n) => !n.startsWith('unmounted'))).toEqual([]);
      expect(e.leftovers()).toEqual([]);
      expect(isAlive(dockerd)).toBe(false);
      expect(isAlive(containerd)).toBe(false);
      expect(isAlive(e.holderPid)).toBe(false);
      expect(mountPoints('self', e.base)).toEqual([]);
      expect(fs.existsSync(e.base)).toBe(false);
      expect(await hostLinks()).toBe(linksBefore);
    } finally {
      await e.teardown();
    }
  }, 90_000);

  s.scenario('teardown with hostvol stops the plugin after the daemon and removes its socket', async () => {
    const e = await startEngine({ images: false });
    try {
      const hv = await startHostvol(e);
      expect(fs.readlinkSync(`/proc/${hv.pid}/ns/mnt`)).toBe(e.ns);
      const v = uniq('tv');
      await e.docker(['volume', 'create', '-d', DRIVER, v]);
      const pid = hv.pid;
      e.keepLogsIn = fs.mkdtempSync('/tmp/hv-logs-');
      const notes = await e.teardown();
      expect(notes).toEqual([]);
      expect(e.leftovers()).toEqual([]);
      expect(isAlive(pid)).toBe(false);
      expect(fs.existsSync(hv.socket)).toBe(false);
      // the plugin answered the volume removal of step 2 before it was stopped
      const log = fs.readFileSync(`${e.keepLogsIn}/${e.cgroupName}/hostvol.log`, 'utf8');
      fs.rmSync(e.keepLogsIn, { recursive: true });
      expect(log).toContain('"route":"/VolumeDriver.Remove"');
    } finally {
      await e.teardown();
    }
  }, 90_000);
});
