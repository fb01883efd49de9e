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
 * `ownMountsDir` is where hostvol makes its own bind mounts (`<state-dir>/mounts`, or a managed plugin's
 * propagated mount). On systemd hosts `/` is a shared mount, so those binds propagate into every
 * namespace that is a slave of ours (services with PrivateTmp, ProtectSystem, …) and would look like
 * users forever; a managed plugin's binds show on the host as peers of its propagated mount. What is
 * not counted: a mount inside ownMountsDir; a peer of one of our binds (shared:N), which is the bind
 * itself seen from elsewhere; and a slave of one (master:N) that sits where one of our binds sits, or
 * below a prefix there (a namespace that pivot-rooted shows its old root's mounts under /.old).
 * A container's mount sits at its own destination, so it counts even when it is a slave of our bind's
 * group, as it is when dockerd binds a managed plugin's volume from the host's view of it. (A container
 * that chose one of our bind targets' paths as its destination would be taken for a copy.)
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
  // Our own binds: their peer groups, and where they sit. A copy of one that propagated elsewhere is in
  // the same group (shared:N) or a slave of it (master:N).
  const ownGroups = new Set<string>();
  const peerPoints = new Set<string>();
  for (const m of await readMounts()) {
    if (m.mountPoint !== ownMountsDir && isInside(m.mountPoint, ownMountsDir)) {
      peerPoints.add(m.mountPoint);
      for (const p of m.propagation) if (p.startsWith('shared:')) ownGroups.add(p.slice(7));
    }
  }
  const inGroupOf = (m: MountEntry, kind: 'shared' | 'master') =>
    m.propagation.some((p) => p.startsWith(`${kind}:`) && ownGroups.has(p.slice(kind.length + 1)));

  const namespaces = await inBatches(pids, nsOf);
  const seen = new Set([await nsOf('self')]);
  const others: string[] = [];
  namespaces.forEach((ns, i) => {
    if (ns && !seen.has(ns)) others.push(pids[i]);
    seen.add(ns);
  });
  // One mount table per namespace; a namespace whose only process exited reads as empty.
  const tables = await inBatches(others, mountsOf);

  // Where our binds show: in our mounts directory, and wherever a peer of one sits (the host's view of
  // a managed plugin's propagated mount). A peer (shared:N) is our bind itself, seen from elsewhere.
  // A slave (master:N) is either a copy that propagated into a slave namespace (a systemd service) or
  // a container's mount: dockerd binds a managed plugin's volume from the host's view of it, and a
  // bind of a slave is a slave of the same group, so the group alone cannot tell them apart. Their
  // place does: a propagated copy sits where a peer sits (or below a prefix, where a namespace that
  // pivot-rooted keeps its old root), while a container's mount sits at its own destination.
  for (const t of tables) for (const m of t) if (inGroupOf(m, 'shared')) peerPoints.add(m.mountPoint);
  const atPeerPlace = (m: MountEntry) => [...peerPoints].some((p) => m.mountPoint === p || m.mountPoint.endsWith(p));
  const copyOfOurs = (m: MountEntry) => inGroupOf(m, 'shared') || (inGroupOf(m, 'master') && (isInside(m.mountPoint, ownMountsDir) || atPeerPlace(m)));
  const uses = (m: MountEntry) => m.dev === holder.dev && isInside(m.root, root) && !isInside(m.mountPoint, ownMountsDir) && !copyOfOurs(m);
  return tables.some((t) => t.some(uses));
}
