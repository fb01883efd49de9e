// Whether a container still has a volume mounted is asked of the kernel: another mount namespace with a
// bind mount of the directory (as runc makes for a container) means in use. Copies of hostvol's own
// bind mounts that propagated into other namespaces (a shared `/` on systemd hosts) do not.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stopLibc } from '../../src/host/libc';
import { mountedElsewhere } from '../../src/host/inuse';
import { systemMounter } from '../../src/host/mounter';
import { readMounts } from '../../src/host/mountinfo';
import { unmountAndRemove } from './support';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-inuse-'));
const vol = path.join(dir, 'vol');
const other = path.join(dir, 'other');
/** Stands for `<state-dir>`; its `mounts` directory is where hostvol binds volumes. */
const state = path.join(dir, 'state');
const ownMounts = path.join(state, 'mounts');
const bindTarget = path.join(ownMounts, 'v');
for (const d of [vol, path.join(vol, 'sub'), other, ownMounts]) fs.mkdirSync(d, { recursive: true });
const children: ChildProcess[] = [];

/** Starts a shell script and returns a function that waits for its next output line. */
function start(argv: string[]): { child: ChildProcess; line: () => Promise<string> } {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const lines: string[] = [];
  let wake = () => {};
  child.stdout!.on('data', (d: Buffer) => {
    lines.push(...d.toString().split('\n').filter(Boolean));
    wake();
  });
  const line = async (): Promise<string> => {
    while (!lines.length) {
      if (child.exitCode !== null) throw new Error(`${argv.join(' ')} exited with ${child.exitCode}`);
      await new Promise<void>((r) => (wake = r));
    }
    return lines.shift()!;
  };
  return { child, line };
}
const stop = async (c: ChildProcess) => {
  c.kill('SIGKILL');
  await new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)));
};
/** A "container": its own private mount namespace with `what` bound at `where`, as runc does. */
async function container(what: string, where: string): Promise<ChildProcess> {
  const c = start(['/usr/bin/unshare', '--mount', '--propagation', 'private', '/bin/sh', '-c',
    `mount --bind "${what}" "${where}" && echo up && exec sleep 300`]);
  await c.line();
  return c.child;
}
const mountPointsOf = async (pid: number | undefined) => (await readMounts(pid!)).map((m) => m.mountPoint);
const inUse = (d: string) => mountedElsewhere(d, ownMounts);

afterAll(async () => {
  for (const c of children) await stop(c);
  await unmountAndRemove(dir);
  await stopLibc();
});

test('without a visible dockerd (a managed plugin in its own PID namespace) it cannot tell', async () => {
  // An engine of another suite may be running on this machine; then the answer is a real one.
  const comms = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map((p) => {
    try {
      return fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  });
  expect((await inUse(vol)) === undefined).toBe(!comms.includes('dockerd'));
});

describe('with dockerd visible', () => {
  beforeAll(async () => {
    // Any process whose command name is dockerd stands for the daemon here.
    fs.copyFileSync('/bin/sleep', path.join(dir, 'dockerd'));
    fs.chmodSync(path.join(dir, 'dockerd'), 0o755);
    const fake = spawn(path.join(dir, 'dockerd'), ['300'], { stdio: 'ignore' });
    children.push(fake);
    const comm = () => { try { return fs.readFileSync(`/proc/${fake.pid}/comm`, 'utf8').trim(); } catch { return ''; } };
    while (comm() !== 'dockerd') await new Promise((r) => setTimeout(r, 5));
  });

  test('no namespace has the directory mounted: not in use', async () => {
    expect(await inUse(vol)).toBe(false);
  });

  test('a "container" namespace with a bind mount of it, or of a part of it: in use until it exits', async () => {
    const ctr = await container(path.join(vol, 'sub'), other);
    expect(await inUse(vol)).toBe(true);
    expect(await inUse(other)).toBe(false);
    await stop(ctr);
    expect(await inUse(vol)).toBe(false);
  });

  test('a mount of it in our own namespace (a data disk bound at the volume path) does not count', async () => {
    execFileSync('/usr/bin/mount', ['--bind', vol, vol]);
    try {
      expect(await inUse(vol)).toBe(false);
    } finally {
      execFileSync('/usr/bin/umount', [vol]);
    }
  });

  /**
   * On systemd hosts `/` is shared and services run in slave namespaces. Here the state directory
   * alone is made a shared mount in our namespace (our `/` is left as it is), which is the same as
   * far as hostvol's binds below it are concerned.
   */
  describe('hostvol\'s own bind propagated into a slave namespace', () => {
    let slave: ChildProcess;
    beforeAll(async () => {
      execFileSync('/usr/bin/mount', ['--bind', state, state]);
      execFileSync('/usr/bin/mount', ['--make-shared', state]);
      // A copy of our namespace keeps the state mount in our peer group; rslave makes it receive only.
      const s = start(['/usr/bin/unshare', '--mount', '--propagation', 'unchanged', '/bin/sh', '-c',
        'mount --make-rslave / && echo up && exec sleep 300']);
      await s.line();
      slave = s.child;
      const h = await fs.promises.open(vol, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      await systemMounter.bind(h.fd, bindTarget, false).finally(() => h.close());
    });
    afterAll(async () => {
      await systemMounter.release(bindTarget);
    });

    test('the copy at the same place inside the mounts directory does not count', async () => {
      expect(await mountPointsOf(slave.pid)).toContain(bindTarget); // the copy is really there
      expect(await inUse(vol)).toBe(false);
    });

    test('a container that has it mounted at its own mount point still counts', async () => {
      const ctr = await container(vol, other);
      expect(await inUse(vol)).toBe(true);
      await stop(ctr);
      expect(await inUse(vol)).toBe(false);
    });

    test('a container whose mount is a slave of our bind (as dockerd binds a managed plugin\'s volume) still counts', async () => {
      // In a slave namespace a bind of the propagated copy is a slave of the same group: what a
      // container's volume mount is when dockerd binds it from the host's view of the plugin's bind.
      const c = start(['/usr/bin/unshare', '--mount', '--propagation', 'unchanged', '/bin/sh', '-c',
        `mount --make-rslave / && mount --bind "${bindTarget}" "${other}" && echo up && exec sleep 300`]);
      await c.line();
      const m = (await readMounts(c.child.pid!)).find((e) => e.mountPoint === other);
      expect(m?.propagation.some((p) => p.startsWith('master:'))).toBe(true); // really a slave of our group
      expect(await inUse(vol)).toBe(true);
      await stop(c.child);
      expect(await inUse(vol)).toBe(false);
    });

    test('a copy in a namespace that then pivot-rooted is still known as a copy of ours (its peer group), wherever it shows', async () => {
      // The namespace takes a recursive copy of / as its new root (bringing the propagated copy
      // along, at the same path below it) and keeps the old root at /.old until told to detach it.
      const newRoot = path.join(dir, 'newroot');
      fs.mkdirSync(newRoot);
      const p = start(['/usr/bin/unshare', '--mount', '--propagation', 'unchanged', '/bin/sh', '-c', [
        `mount --make-rslave / && mount --rbind / "${newRoot}" && mkdir -p "${newRoot}/.old"`,
        `cd "${newRoot}" && pivot_root . .old && cd / && echo pivoted`,
        'read go && umount -l /.old && echo detached && exec sleep 300'].join(' && ')]);
      expect(await p.line()).toBe('pivoted');
      const seen = await mountPointsOf(p.child.pid);
      expect(seen).toContain(bindTarget);
      expect(seen).toContain(`/.old${bindTarget}`);
      // Shown outside the mounts directory, but a slave of our bind's peer group: a copy, not a user.
      expect(await inUse(vol)).toBe(false);
      p.child.stdin!.write('go\n');
      expect(await p.line()).toBe('detached');
      expect(await inUse(vol)).toBe(false);
      await stop(p.child);
    });
  });
});
