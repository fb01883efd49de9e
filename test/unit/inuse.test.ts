// Whether a container still has a volume mounted is asked of the kernel: another mount namespace with a
// bind mount of the directory (as runc makes for a container) means in use.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mountedElsewhere } from '../../src/host/inuse';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-inuse-'));
const vol = path.join(dir, 'vol');
const other = path.join(dir, 'other');
fs.mkdirSync(vol);
fs.mkdirSync(other);
const children: ChildProcess[] = [];

/** Starts `argv` and waits until it printed a line (so its mounts exist). */
async function start(argv: string[]): Promise<ChildProcess> {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise((r) => child.stdout!.once('data', r));
  return child;
}
const stop = async (c: ChildProcess) => {
  c.kill('SIGKILL');
  await new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)));
};

afterAll(async () => {
  for (const c of children) await stop(c);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('without a visible dockerd (a managed plugin in its own PID namespace) it cannot tell', () => {
  // An engine of another suite may be running on this machine; then the answer is a real one.
  const dockerdRuns = fs.readdirSync('/proc').some((p) => /^\d+$/.test(p) && fs.existsSync(`/proc/${p}/comm`) &&
    (() => { try { return fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'dockerd'; } catch { return false; } })());
  expect(mountedElsewhere(vol) === undefined).toBe(!dockerdRuns);
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

  test('no namespace has the directory mounted: not in use', () => {
    expect(mountedElsewhere(vol)).toBe(false);
  });

  test('a "container" namespace with a bind mount of it, or of a part of it: in use until it exits', async () => {
    fs.mkdirSync(path.join(vol, 'sub'), { recursive: true });
    const ctr = await start(['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
      `mount --bind ${vol}/sub ${other} && echo up && exec sleep 300`]);
    expect(mountedElsewhere(vol)).toBe(true);
    expect(mountedElsewhere(other)).toBe(false);
    await stop(ctr);
    expect(mountedElsewhere(vol)).toBe(false);
  });
});
