// Cluster mode keeps one set of volume records for every node, so every node must see the same data
// root (a shared file system mounted at the same path); otherwise a volume created on one node would
// be an empty directory, or none, on the next. A node proves it at start-up: it writes a random token
// to <data-root>/.hostvol-cluster/<node> and publishes the token in etcd (<prefix>/nodes/<node>,
// attached to its lease, so only live nodes are checked), after reading every token the other live
// nodes published from its own data root. A token missing or different there means that node
// wrote to another file system: refuse to start. (A volume name cannot start with '.'.)
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HostvolError } from '../errors';
import type { Keys } from './etcd-keys';
import { publishIfUnchanged, readNodeKey, refuseOtherHolder, type NodeIdentity, type Published } from './etcd-node';
import type { EtcdSession } from './etcd-session';

export const MARKER_DIR = '.hostvol-cluster';
/** How often a publish that lost to another write of our name is decided again. */
const ATTEMPTS = 5;

/**
 * Start-up only (synchronous file calls are fine then). Refuses a node name another live hostvol
 * uses (etcd-node.ts) before touching its marker, then proves the data root is shared and publishes
 * this node. Resolves to what it published.
 */
export async function checkSharedDataRoot(session: EtcdSession, keys: Keys, dataRoot: string, self: NodeIdentity, ttl: number): Promise<Published> {
  const dir = path.join(dataRoot, MARKER_DIR);
  const own = path.join(dir, encodeURIComponent(keys.node));
  const published: Published = { token: randomBytes(16).toString('hex'), dataRoot, ...self };
  let mine = await readNodeKey(session, keys);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    refuseOtherHolder(keys, self, mine, ttl);
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    writeMarker(own, published.token);
    await checkOthers(session, keys, dataRoot, dir);
    const now = await publishIfUnchanged(session, keys, published, mine);
    if (now === 'published') return published;
    // Another hostvol published our name since we read it: if it is not our own previous life, our
    // marker just replaced its token; put that back before refusing, or every node started later
    // would find its marker wrong.
    const theirs = now && (JSON.parse(now.value.toString()) as Published);
    if (theirs && theirs.storeId !== undefined && theirs.storeId !== self.storeId) writeMarker(own, theirs.token);
    mine = now;
  }
  throw new HostvolError(`cannot publish node "${keys.node}" in etcd: its key kept changing under it (${ATTEMPTS} tries); is another hostvol starting with this name?`);
}

function writeMarker(file: string, token: string): void {
  const fd = fs.openSync(file, 'w', 0o644);
  try {
    fs.writeFileSync(fd, `${token}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Every other live node's token must be in its marker file as this node sees the data root. */
async function checkOthers(session: EtcdSession, keys: Keys, dataRoot: string, dir: string): Promise<void> {
  const others = await session.call('read the nodes of the cluster', () => session.client.getAll().prefix(keys.nodes()).strings());
  for (const [key, value] of Object.entries(others)) {
    const node = keys.nameOf(key);
    if (node === keys.node) continue;
    const theirs = JSON.parse(value) as Published;
    const file = path.join(dir, encodeURIComponent(node));
    let seen: string | undefined;
    try {
      seen = fs.readFileSync(file, 'utf8').trim();
    } catch {
      seen = undefined;
    }
    if (seen !== theirs.token) {
      throw new HostvolError(
        `data root ${dataRoot} is not the file system node "${node}" sees: its marker ${file} ${seen === undefined ? 'is missing' : 'holds another token'}; ` +
          `mount the shared file system at ${theirs.dataRoot} on every node (at the same path), then start hostvol again`,
      );
    }
  }
}

/**
 * Puts this node on its current etcd lease again, after a lost lease was replaced. While this node was
 * cut off past the TTL its name was free: if another hostvol took it meanwhile, nothing is overwritten
 * and the caller is told who (the two now share a name, which only an operator can undo).
 */
export async function publishNode(session: EtcdSession, keys: Keys, published: Published, ttl: number): Promise<void> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const now = await readNodeKey(session, keys);
    refuseOtherHolder(keys, published as Published & NodeIdentity, now, ttl);
    if ((await publishIfUnchanged(session, keys, published, now)) === 'published') return;
  }
  throw new HostvolError(`cannot publish node "${keys.node}" in etcd again: its key kept changing under it (${ATTEMPTS} tries)`);
}
