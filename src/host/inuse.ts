// Whether any container still has a directory mounted, asked of the kernel: used only to decide
// whether mount leases left by a dockerd that died can be dropped. Every /proc read is async: a host
// can run thousands of processes, and the event loop must keep answering meanwhile.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readMounts, type MountEntry } from './mountinfo';
import { isInside } from './paths';

/** /proc reads in flight at once: enough to keep libuv's pool busy without flooding it. */
const BATCH = 32;

async function inBatches<T, R>(items: T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += BATCH) out.push(...(await Promise.all(items.slice(i, i + BATCH).map(fn))));
  return out;
}

// A process may exit between readdir and any of these: it then simply has nothing to say.
const commOf = (pid: string) => fs.promises.readFile(`/proc/${pid}/comm`, 'utf8').then((s) => s.trim(), () => undefined);
const nsOf = (pid: string) => fs.promises.readlink(`/proc/${pid}/ns/mnt`).catch(() => undefined);
const mountsOf = (pid: string) => readMounts(Number(pid)).catch((): MountEntry[] => []);

/**
 * True when a mount namespace other than ours has `dir` (or a part of it) mounted, as a container
 * does with its volumes; false when none has; undefined when this process cannot tell, because it
 * does not see dockerd (a managed plugin runs in its own PID namespace) or `dir` is in no mount.
 *
 * `ownMountsDir` is where hostvol makes its own bind mounts (`<state-dir>/mounts`). On systemd hosts
 * `/` is a shared mount, so those binds propagate into every namespace that is a slave of ours
 * (services with PrivateTmp, ProtectSystem, …) and would look like users forever. A propagated copy
 * is a copy of the mount at the same place, so it sits inside ownMountsDir there too; such entries
 * are not counted. A container's mount is made by runc at the container's own path, below the root it
 * pivots into, and the container's mounts are rprivate, so no later bind of ours reaches it. A copy
 * that did reach a namespace which then pivot-rooted either went away with the old root (detached,
 * as runc does) or is shown under the old root's new place, outside ownMountsDir, and counted: the
 * lease is then kept, the safe side. Only a mount at a path inside ownMountsDir is ignored, and nothing
 * but hostvol's binds and their copies has reason to be there; and so is a mount in the peer group of
 * one of our binds (or a slave of it), which is how a managed plugin's binds show on the host.
 */
export async function mountedElsewhere(dir: string, ownMountsDir: string): Promise<boolean | undefined> {
  const pids = (await fs.promises.readdir('/proc')).filter((p) => /^\d+$/.test(p));
  const comms = await inBatches(pids, commOf);
  if (!comms.includes('dockerd')) return undefined;
  // dir's file system and its path inside it: that is what any bind mount of dir shows as its root.
  // The deepest mount point holding dir; of mounts stacked there, the last one, which is on top.
  let holder: MountEntry | undefined;
  for (const m of await readMounts()) {
    if (isInside(dir, m.mountPoint) && m.mountPoint.length >= (holder?.mountPoint.length ?? 0)) holder = m;
  }
  if (!holder) return undefined;
  const root = path.join(holder.root, path.relative(holder.mountPoint, dir));
  // Peer groups of our own binds: a copy that propagated elsewhere is in the same group (shared:N)
  // or a slave of it (master:N), wherever it shows: in the host's view of a managed plugin's
  // propagated mount, or in a slave namespace. Containers' mounts are rprivate, in no group of ours.
  const ownGroups = new Set<string>();
  for (const m of await readMounts()) {
    if (m.mountPoint !== ownMountsDir && isInside(m.mountPoint, ownMountsDir)) {
      for (const p of m.propagation) if (p.startsWith('shared:')) ownGroups.add(p.slice(7));
    }
  }
  const copyOfOurs = (m: MountEntry) => m.propagation.some((p) => ownGroups.has(p.slice(p.indexOf(':') + 1)) && /^(shared|master):/.test(p));
  const uses = (m: MountEntry) => m.dev === holder.dev && isInside(m.root, root) && !isInside(m.mountPoint, ownMountsDir) && !copyOfOurs(m);

  const namespaces = await inBatches(pids, nsOf);
  const seen = new Set([await nsOf('self')]);
  const others: string[] = [];
  namespaces.forEach((ns, i) => {
    if (ns && !seen.has(ns)) others.push(pids[i]);
    seen.add(ns);
  });
  // One mount table per namespace; a namespace whose only process exited reads as empty.
  for (let i = 0; i < others.length; i += BATCH) {
    const tables = await Promise.all(others.slice(i, i + BATCH).map(mountsOf));
    if (tables.some((t) => t.some(uses))) return true;
  }
  return false;
}
