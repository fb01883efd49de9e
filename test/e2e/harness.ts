// Entry point of the e2e harness. The engine part (lib/engine.ts) knows nothing about hostvol and can be
// reused by other suites (managed plugin, benchmarks); the plugin part is lib/hostvol.ts. e2eSuite() wires
// both into jest: one private engine (+ hostvol) per test file, teardown in afterAll, and scenario() tests
// that print hostvol's and dockerd's log tails when they fail or time out.
import { Engine, startEngine, type EngineOptions } from './lib/engine';
import { Hostvol, startHostvol, type HostvolOptions, type Req } from './lib/hostvol';
import { killInFlight } from './lib/proc';

export * from './lib/engine';
export * from './lib/hostvol';
export * from './lib/images';
export { run, sleep, waitFor, isAlive, mountPoints, readPid, type RunResult } from './lib/proc';

export interface SuiteOptions {
  engine?: EngineOptions;
  /** false: engine only (built-in drivers). Default: start hostvol with these options. */
  hostvol?: HostvolOptions | false;
}

export interface Suite {
  readonly engine: Engine;
  readonly hv: Hostvol;
  docker: Engine['docker'];
  /** A jest test that dumps the log tails on failure and kills in-flight commands on timeout. */
  scenario(name: string, fn: () => Promise<void>, timeoutMs?: number): void;
  /** Print the log tails now (e.g. from a test that catches its own errors). */
  dumpLogs(reason: string): void;
}

const exitKillers = new Set<() => void>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const k of exitKillers) k();
  });
}

export function e2eSuite(opts: SuiteOptions = {}): Suite {
  let engine: Engine | undefined;
  let hv: Hostvol | undefined;
  let startError: Error | undefined;
  let exitKiller: (() => void) | undefined;

  const dumpLogs = (reason: string) => {
    const parts = [`\n========== ${reason} ==========`];
    if (hv) parts.push(`----- hostvol log tail (${hv.logFile}) -----\n${hv.logTail(80)}`);
    if (engine) parts.push(`----- dockerd log tail (${engine.dockerdLog}) -----\n${engine.logTail(60)}`);
    // eslint-disable-next-line no-console
    console.error(parts.join('\n'));
  };

  beforeAll(async () => {
    installExitHook();
    try {
      engine = await startEngine(opts.engine);
      const e = engine;
      exitKiller = () => e.killAllSync();
      exitKillers.add(exitKiller);
      if (opts.hostvol !== false) hv = await startHostvol(engine, opts.hostvol ?? {});
    } catch (e) {
      startError = e as Error;
      dumpLogs('e2e suite setup failed');
      throw e;
    }
  }, 180_000);

  afterAll(async () => {
    killInFlight();
    if (!engine) return;
    const e = engine;
    const notes = await e.teardown();
    const left = e.leftovers();
    if (exitKiller) exitKillers.delete(exitKiller);
    if (notes.length) console.warn(`[e2e teardown] ${notes.join('\n')}`);
    if (left.length) throw new Error(`teardown left state behind:\n${left.join('\n')}`);
  }, 180_000);

  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${what} is not running${startError ? `: ${startError.message}` : ''}`);
    return v;
  };

  return {
    get engine() {
      return need(engine, 'engine');
    },
    get hv() {
      return need(hv, 'hostvol');
    },
    docker: (args, o) => need(engine, 'engine').docker(args, o),
    dumpLogs,
    scenario(name, fn, timeoutMs = 60_000) {
      test(
        name,
        async () => {
          let timer: NodeJS.Timeout | undefined;
          const timeout = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`scenario timed out after ${timeoutMs} ms`)), timeoutMs);
          });
          try {
            await Promise.race([fn(), timeout]);
          } catch (e) {
            killInFlight();
            dumpLogs(`FAILED: ${name}`);
            throw e;
          } finally {
            clearTimeout(timer);
          }
        },
        timeoutMs + 10_000,
      );
    },
  };
}

// ---------- request-log helpers ----------

/** Requests to `route` (short form like "Mount" or full "/VolumeDriver.Mount"), optionally for one volume name. */
export function calls(reqs: Req[], route: string, name?: string): Req[] {
  const full = route.startsWith('/') ? route : route === 'Activate' ? '/Plugin.Activate' : `/VolumeDriver.${route}`;
  return reqs.filter((r) => r.route === full && (name === undefined || r.body?.Name === name));
}

/** Count of requests per short route name, e.g. { Get: 3, Mount: 1 }, optionally for one volume name. */
export function counts(reqs: Req[], name?: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of reqs) {
    if (name !== undefined && r.body?.Name !== name) continue;
    const short = r.route.replace(/^\/(VolumeDriver|Plugin)\./, '');
    out[short] = (out[short] ?? 0) + 1;
  }
  return out;
}

/** Unique suffix for volume/container names within a file. */
let seq = 0;
export function uniq(prefix: string): string {
  seq++;
  return `${prefix}${seq}${Math.random().toString(36).slice(2, 6)}`;
}

/** A container command that exits promptly on SIGTERM (busybox sleep as PID 1 would ignore it). */
export const IDLE = ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 0.2; done'];

/** Options for every `docker run/create`: never try a registry. */
export const RUN = ['--pull', 'never'];

// ---------- docker helpers ----------

/** `docker volume inspect NAME`, parsed. */
export async function inspectVolume(e: Engine, name: string): Promise<any> {
  return JSON.parse((await e.docker(['volume', 'inspect', name])).stdout)[0];
}

/** `docker volume ls` rows as "driver name", with optional extra args such as ['-f', 'dangling=true']. */
export async function volumeRows(e: Engine, extra: string[] = []): Promise<string[]> {
  const r = await e.docker(['volume', 'ls', ...extra, '--format', '{{.Driver}} {{.Name}}']);
  return r.stdout.split('\n').filter(Boolean);
}

/** `docker inspect CONTAINER`, parsed. */
export async function inspectContainer(e: Engine, name: string): Promise<any> {
  return JSON.parse((await e.docker(['inspect', '--type', 'container', name])).stdout)[0];
}

/** Opts as dockerd sends them for "no options": null (CLI 23+) or {} (20.10 CLI). */
export function noOpts(opts: unknown): boolean {
  return opts === null || opts === undefined || (typeof opts === 'object' && Object.keys(opts as object).length === 0);
}

export const HEX64 = /^[0-9a-f]{64}$/;
