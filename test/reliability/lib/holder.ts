// A container, as far as hostvol can tell one: a process in its own private mount namespace with a
// volume's directory bind-mounted at a path of its own (as runc mounts volumes into a container's
// root), and a process named `dockerd` beside it, without which hostvol does not trust what it sees
// of other namespaces (it would then be a managed plugin in its own PID namespace).
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

export class Holder {
  private constructor(private readonly procs: ChildProcess[]) {}

  /** Starts the fake dockerd (a copy of /bin/sleep named dockerd, kept in `scratch`) and the holder of `dir`. */
  static async start(dir: string, scratch: string): Promise<Holder> {
    fs.mkdirSync(scratch, { recursive: true });
    const dockerdBin = `${scratch}/dockerd`;
    fs.copyFileSync('/bin/sleep', dockerdBin);
    fs.chmodSync(dockerdBin, 0o755);
    const dockerd = spawn(dockerdBin, ['600'], { stdio: 'ignore' });
    const at = `${scratch}/rootfs-volume`;
    fs.mkdirSync(at, { recursive: true });
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const holder = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c',
      `mount --bind ${q(dir)} ${q(at)} && echo ready && exec sleep 600`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const h = new Holder([dockerd, holder]);
    const ready = await new Promise<boolean>((resolve) => {
      holder.stdout!.once('data', () => resolve(true));
      holder.once('exit', () => resolve(false));
    });
    if (!ready) {
      await h.stop();
      throw new Error(`could not bind ${dir} in a private mount namespace (needs unshare from util-linux and root)`);
    }
    return h;
  }

  /** Kills both processes and waits until they are gone (the holder's namespace goes with it). */
  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => {
      p.once('exit', r);
      p.kill('SIGKILL');
    }))));
  }
}
