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
import type { EtcdSession } from './etcd-session';

export const MARKER_DIR = '.hostvol-cluster';

interface Published {
  token: string;
  dataRoot: string;
}

/** Start-up only (synchronous file calls are fine then). Resolves to this node's token. */
export async function checkSharedDataRoot(session: EtcdSession, keys: Keys, dataRoot: string): Promise<string> {
  const dir = path.join(dataRoot, MARKER_DIR);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const token = randomBytes(16).toString('hex');
  const own = path.join(dir, encodeURIComponent(keys.node));
  const fd = fs.openSync(own, 'w', 0o644);
  try {
    fs.writeFileSync(fd, `${token}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
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
  await publishNode(session, keys, token, dataRoot);
  return token;
}

/** Puts this node's token on its current etcd lease (again, after a lost lease was replaced). */
export async function publishNode(session: EtcdSession, keys: Keys, token: string, dataRoot: string): Promise<void> {
  const published: Published = { token, dataRoot };
  await session.call('publish this node', () => session.client.put(keys.nodeKey()).value(JSON.stringify(published)).lease(session.id).exec());
}
