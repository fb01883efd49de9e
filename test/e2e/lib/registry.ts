// A private image registry for one Engine: Debian's docker-registry (distribution 2.8) inside the engine's
// mount and network namespace, listening on 127.0.0.1 there, with its config file and storage in BASE.
// dockerd treats a registry on a loopback address as insecure-allowed, so `docker plugin push/install/
// upgrade localhost:PORT/...` need no daemon flags. Nothing listens outside the engine's namespace; the
// registry is stopped as the engine's teardown runs its finalizers.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Engine } from './engine';
import { isAlive, run, terminate, waitFor } from './proc';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface Registry {
  /** What image references start with, e.g. "localhost:5000". */
  address: string;
  pid: number;
  stop(): Promise<void>;
}

/** Start the registry on 127.0.0.1:`port` of the engine's private network namespace. */
export async function startRegistry(engine: Engine, port = 5000): Promise<Registry> {
  if (!fs.existsSync(REGISTRY_BIN)) throw new Error(`${REGISTRY_BIN} is missing: run \`bash test/e2e/install-registry.sh\``);
  const dir = path.join(engine.base, 'registry');
  fs.mkdirSync(path.join(dir, 'storage'), { recursive: true });
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(
    config,
    [
      'version: 0.1',
      'log: {level: warn}',
      `storage: {filesystem: {rootdirectory: ${path.join(dir, 'storage')}}, delete: {enabled: true}}`,
      `http: {addr: "127.0.0.1:${port}"}`,
      '',
    ].join('\n'),
  );
  const log = fs.openSync(path.join(engine.base, 'registry.log'), 'a');
  const args = [...engine.nsenter(true), REGISTRY_BIN, 'serve', config];
  const child = spawn(args[0], args.slice(1), { detached: true, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  child.unref();
  const pid = child.pid!;
  const stop = async () => void (await terminate(pid, 5000));
  engine.addFinalizer(stop);
  // Ready once /v2/ answers inside the namespace (busybox wget: no curl needed, no traffic outside it).
  await waitFor('docker-registry to answer on /v2/', async () => {
    if (!isAlive(pid)) throw new Error(`docker-registry exited: ${fs.readFileSync(path.join(engine.base, 'registry.log'), 'utf8')}`);
    const r = await run(engine.nsenter(true)[0], [...engine.nsenter(true).slice(1), '/bin/busybox', 'wget', '-q', '-O', '-', `http://127.0.0.1:${port}/v2/`], { allowFail: true, timeoutMs: 5000 });
    return r.code === 0;
  }, 20_000, 100);
  return { address: `localhost:${port}`, pid, stop };
}
