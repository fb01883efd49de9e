// One live hostvol per node name (src/store/etcd-node.ts), against a real etcd (one member, started
// here). A hostvol is an EtcdStore with a state directory; `{ ...s.config }` is the same hostvol
// restarted, the same config with another stateDir is another hostvol using the same name.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { EtcdStore } from '../../src/store/etcd';
import { MARKER_DIR } from '../../src/store/etcd-marker';
import { useEtcd } from './etcd-fixture';

jest.setTimeout(60_000);

const fx = useEtcd('hostvol-etcd-node-');

type Config = EtcdStore['config'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A hostvol's config: a fresh prefix (cluster) and data root unless given, its own state directory. */
function hostvol(node: string, cluster?: Config): Config {
  const prefix = cluster?.prefix ?? fx.prefix('n');
  const dataRoot = cluster?.dataRoot ?? fs.mkdtempSync(path.join(fx.dir, 'data-'));
  const stateDir = fs.mkdtempSync(path.join(fx.dir, `state-${node}-`));
  return { urls: fx.etcd.urls, node, prefix, leaseTtl: 2, dataRoot, stateDir, opTimeoutMs: 3000 };
}
async function start(config: Config): Promise<EtcdStore> {
  const s = new EtcdStore({ ...config }, pino({ level: 'silent' }));
  fx.opened.push(s);
  await s.load();
  return s;
}
const marker = (c: Config) => fs.readFileSync(path.join(c.dataRoot, MARKER_DIR, c.node), 'utf8');

test('a second live hostvol with the same node name is refused, naming the other and the fix, and leaves its marker alone', async () => {
  const first = hostvol('node1');
  await start(first);
  const before = marker(first);
  const second = { ...hostvol('node1', first) };
  const refused = start(second);
  await expect(refused).rejects.toThrow(`node name "node1" is already used by another live hostvol: host ${os.hostname()}, state directory ${first.stateDir} (store `);
  await expect(refused).rejects.toThrow(`this one is host ${os.hostname()}, state directory ${second.stateDir}`);
  await expect(refused).rejects.toThrow('Give each node its own name (--node-name or HOSTVOL_NODE_NAME), or stop the other one first (its name is free at most 2 s after it stops)');
  await expect(refused).rejects.toThrow(/pid \d+, started \d{4}-\d\d-\d\dT/);
  // The first one's marker still proves its data root: a third node with its own name starts.
  expect(marker(first)).toBe(before);
  await start(hostvol('node2', first));
});

test('the same hostvol restarted within the TTL (lease not revoked) starts and publishes its name again', async () => {
  const first = hostvol('node1');
  const a = await start(first);
  await a.close(); // keepalives stop, the lease (and the name's key on it) lingers up to the TTL
  await start(first);
  // Its name is now on the restarted process's lease: another hostvol is still refused past the first lease's TTL.
  await sleep(2500);
  await expect(start(hostvol('node1', first))).rejects.toThrow('node name "node1" is already used by another live hostvol');
});

test('once the other hostvol is gone past the TTL, its name is free', async () => {
  const first = hostvol('node1');
  const a = await start(first);
  await a.close();
  await sleep(2500);
  await start(hostvol('node1', first));
});

test('hostvols starting at once with one name: exactly one starts', async () => {
  const first = hostvol('node1');
  const all = [first, hostvol('node1', first), hostvol('node1', first)];
  const results = await Promise.allSettled(all.map((c) => start(c)));
  expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  for (const r of results) if (r.status === 'rejected') expect(String(r.reason)).toContain('node name "node1" is already used by another live hostvol');
  // The marker holds the winner's token: a node with another name starting now finds it right.
  await start(hostvol('node2', first));
});
