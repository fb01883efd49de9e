// What every etcd-backed unit test file sets up: one single-member etcd (real, from Debian's
// etcd-server) and a scratch directory for the file, and the stores a test opened closed after it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EtcdCluster } from '../reliability/lib/etcd-cluster';

export interface EtcdFixture {
  /** The file's scratch directory (etcd's data is in dir/etcd). */
  readonly dir: string;
  readonly etcd: EtcdCluster;
  /** Stores to close after the current test. */
  readonly opened: { close(): Promise<void> }[];
  /** A key prefix no other test of the file used: `/${tag}N`. */
  prefix(tag: string): string;
}

export function useEtcd(tmpName: string): EtcdFixture {
  let dir = '';
  let etcd: EtcdCluster | undefined;
  let prefixes = 0;
  const opened: { close(): Promise<void> }[] = [];
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), tmpName));
    etcd = await EtcdCluster.start(path.join(dir, 'etcd'), 1);
  });
  afterAll(async () => {
    await etcd?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
  });
  return {
    get dir() {
      return dir;
    },
    get etcd() {
      if (!etcd) throw new Error('etcd is started in beforeAll; use it from a test');
      return etcd;
    },
    opened,
    prefix: (tag) => `/${tag}${++prefixes}`,
  };
}
