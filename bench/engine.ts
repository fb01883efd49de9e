// End to end through a real engine: a private dockerd from the e2e harness (test/e2e/lib), hostvol as
// its legacy plugin and then as a managed plugin (plugin/build-rootfs.sh + `docker plugin create`),
// each against the built-in `local` driver, timed as the docker CLI sees them, interleaved.
// Skipped, with the reason in the report, when no engine can be started here.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../test/e2e/lib/proc';
import { DOCKER_CLI, startEngine, type Engine } from '../test/e2e/lib/engine';
import { CLI_JS, Hostvol } from '../test/e2e/lib/hostvol';
import { BB_IMAGE } from '../test/e2e/lib/images';
import { FLOOR_JS, LIBC_JS, OFFLOOP_JS, CLI_JS as REPO_CLI_JS, REPO } from './servers';
import type { EngineFigure } from './targets';
import { fmt, median, quantile } from './stats';

/**
 * The harness's Hostvol, with the repository's dist/cli.js: compiled into bench/out, the harness
 * computes its repository root from its own location (bench/out) and would miss it.
 */
class BenchHostvol extends Hostvol {
  override argv(): string[] {
    return super.argv().map((a) => (a === CLI_JS ? REPO_CLI_JS : a));
  }
}

export interface EngineResult {
  lines: string[];
  figures: EngineFigure[];
}

const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const MANAGED = `hostvol:${VERSION}`;

function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root (a private dockerd needs root)';
  for (const bin of ['dockerd', 'containerd', 'runc', DOCKER_CLI]) {
    const found = (process.env.PATH ?? '').split(':').some((d) => d && fs.existsSync(`${d}/${bin}`));
    if (!found) return `${bin} is not installed (make engine, or test/e2e/install-engine.sh, installs docker.io)`;
  }
  return undefined;
}

async function timed(engine: Engine, args: string[]): Promise<number> {
  const t0 = performance.now();
  await engine.docker(args, { timeoutMs: 120_000 });
  return performance.now() - t0;
}

interface Pair {
  local: number[];
  hostvol: number[];
}

/** The two floors (bench/floor.ts, bench/floor-offloop.ts), as legacy plugins of `e`. */
const FLOORS = { floor: 'hvfloor', offloop: 'hvoffloop' } as const;
type FloorKind = keyof typeof FLOORS;

/**
 * Serves each floor on /run/docker/plugins/<name>.sock of `e`, with its own store and data root
 * under the engine's directory; stopped by the engine's teardown. Resolves once both listen.
 */
async function startFloorPlugins(e: Engine): Promise<void> {
  for (const kind of Object.keys(FLOORS) as FloorKind[]) {
    const dir = path.join(e.base, kind);
    fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
    const socket = path.join(e.pluginDirs.run, `${FLOORS[kind]}.sock`);
    const args = [path.join(dir, 'floor.db'), path.join(dir, 'data'), path.join(dir, 'mounts')];
    fs.writeFileSync(args[0], ''); // an empty database: the off-loop floor opens it read-only first
    const argv = kind === 'floor' ? [FLOOR_JS, socket, ...args, LIBC_JS] : [OFFLOOP_JS, socket, ...args];
    const log = fs.openSync(path.join(dir, 'log'), 'a');
    const child = spawn(process.execPath, argv, { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    e.addFinalizer(async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await gone;
      fs.rmSync(socket, { force: true });
    });
    for (let i = 0; !fs.existsSync(socket); i++) {
      if (child.exitCode !== null || i > 500) throw new Error(`the ${kind} did not start as a legacy plugin (see ${dir}/log)`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function summary(label: string, p: Pair): { line: string; ratio: number } {
  const ratio = median(p.hostvol.map((h, i) => h / p.local[i]));
  const s = (xs: number[]) => `${fmt(median(xs))} / ${fmt(Math.min(...xs))} / ${fmt(quantile(xs, 0.9))}`;
  return { line: `| ${label} | ${s(p.local)} | ${s(p.hostvol)} | ${fmt(ratio)}× |`, ratio };
}

const runArgs = (vol: string) => ['run', '--rm', '--pull', 'never', '--network', 'none', '-v', `${vol}:/d`, BB_IMAGE, 'true'];

/**
 * `n` rounds, local and hostvol (as `driver`) alternating first: create a volume, then one `docker run`
 * with it. With `floors`, each round also creates a volume on each floor, placed in turn before,
 * between and after the other two (creates only: the floors' binds are not in dockerd's namespace).
 */
async function rounds(e: Engine, driver: string, tag: string, n: number, floors = false): Promise<{ create: Pair; runs: Pair; floorCreate: Record<FloorKind, number[]> }> {
  const create: Pair = { local: [], hostvol: [] };
  const runs: Pair = { local: [], hostvol: [] };
  const floorCreate: Record<FloorKind, number[]> = { floor: [], offloop: [] };
  const floorKinds = floors ? (Object.keys(FLOORS) as FloorKind[]) : [];
  // Warm-up: first calls pay plugin discovery (Activate) and image/layer caches.
  await e.docker(['volume', 'create', `w${tag}l`]);
  await e.docker(['volume', 'create', '-d', driver, `w${tag}h`]);
  for (const f of floorKinds) await e.docker(['volume', 'create', '-d', FLOORS[f], `w${tag}${f}`]);
  for (const v of [`w${tag}l`, `w${tag}h`]) await e.docker(runArgs(v));
  for (let i = 0; i < n; i++) {
    const order: ('local' | 'hostvol')[] = i % 2 === 0 ? ['local', 'hostvol'] : ['hostvol', 'local'];
    const vol = (d: 'local' | 'hostvol') => `b${tag}${d === 'local' ? 'l' : 'h'}${i}`;
    const creates: (() => Promise<void>)[] = order.map((d) => async () => {
      create[d].push(await timed(e, d === 'local' ? ['volume', 'create', vol(d)] : ['volume', 'create', '-d', driver, vol(d)]));
    });
    floorKinds.forEach((f, k) =>
      creates.splice((i + k) % (creates.length + 1), 0, async () => {
        floorCreate[f].push(await timed(e, ['volume', 'create', '-d', FLOORS[f], `b${tag}${f}${i}`]));
      }),
    );
    for (const c of creates) await c();
    for (const d of order) runs[d].push(await timed(e, runArgs(vol(d))));
  }
  return { create, runs, floorCreate };
}

/** Builds the managed plugin and enables it on `e`, its state and host paths under the engine's directory. */
async function enableManaged(e: Engine): Promise<void> {
  const built = await run('bash', ['plugin/build-rootfs.sh'], { cwd: REPO, allowFail: true, timeoutMs: 300_000 });
  if (built.code !== 0) throw new Error(`plugin/build-rootfs.sh failed: ${built.stderr.trim().split('\n').pop()}`);
  const state = path.join(e.base, 'hv-state');
  const paths = path.join(e.base, 'hv-paths');
  fs.mkdirSync(state, { recursive: true });
  fs.mkdirSync(paths, { recursive: true });
  await e.docker(['plugin', 'create', MANAGED, path.join(REPO, 'plugin')], { timeoutMs: 120_000 });
  await e.docker(['plugin', 'set', MANAGED, `state.source=${state}`, `paths.source=${paths}`, `HOSTVOL_HOST_PATHS=${paths}`]);
  await e.docker(['plugin', 'enable', MANAGED], { timeoutMs: 120_000 });
}

/** `n` rounds per mode (each round: one create and one run per driver). */
export async function runEngine(opt: { log: (l: string) => void; n: number }): Promise<EngineResult> {
  const skip = (reason: string): EngineResult => {
    opt.log(`  skipped: ${reason}`);
    return { lines: [`Not run: ${reason}.`], figures: (['legacy', 'managed'] as const).map((mode) => ({ mode, notRun: reason })) };
  };
  const reason = whyNot();
  if (reason) return skip(reason);
  const n = opt.n;
  let engine: Engine | undefined;
  const t0 = performance.now();
  try {
    engine = await startEngine();
  } catch (err) {
    return skip(`the engine did not start: ${(err as Error).message.split('\n')[0]}`);
  }
  const e = engine;
  const lines: string[] = [];
  const figures: EngineFigure[] = [];
  try {
    const version = (await e.docker(['version', '--format', '{{.Server.Version}}'])).stdout.trim();
    opt.log(`  dockerd ${version} ready in ${fmt((performance.now() - t0) / 1000)} s; ${n} rounds per mode, order alternating`);
    lines.push(
      `A private dockerd ${version} from the e2e harness (\`test/e2e/lib\`: own mount and network namespace, \`--bridge none\`), busybox image \`${BB_IMAGE}\`. ` +
        `hostvol as its legacy plugin (\`--log-level info\`), then as the managed plugin \`${MANAGED}\` built by \`plugin/build-rootfs.sh\`. ` +
        `${n} rounds per mode; in each, both drivers, order alternating; each volume is created and then used by one \`docker run\`. ` +
        'Wall time of the docker CLI, ms: median / min / p90; ratio: median of the per-round ratios hostvol / local.',
      '',
      '| mode | command | local | hostvol | ratio |',
      '|---|---|---:|---:|---:|',
    );
    for (const mode of ['legacy', 'managed'] as const) {
      try {
        let driver = MANAGED;
        if (mode === 'legacy') {
          // At info level, as in production (the harness's default is debug, for its request log).
          const hv = new BenchHostvol(e, { extraArgs: ['--log-level', 'info'] });
          e.addFinalizer(() => hv.shutdown()); // as startHostvol does
          await hv.start();
          await startFloorPlugins(e);
          driver = 'hostvol';
        } else {
          await enableManaged(e);
        }
        const { create, runs, floorCreate } = await rounds(e, driver, mode[0], n, mode === 'legacy');
        const c = summary('`docker volume create [-d DRIVER] vN`', create);
        const r = summary(`\`docker run --rm -v vN:/d ${BB_IMAGE} true\` (--network none)`, runs);
        opt.log(`  ${mode}: volume create ${fmt(c.ratio)}× local, docker run -v ${fmt(r.ratio)}× local`);
        lines.push(`| ${mode} ${c.line}`, `| ${mode} ${r.line}`);
        const figure: EngineFigure = { mode, create: c.ratio, run: r.ratio, createMs: { local: median(create.local), hostvol: median(create.hostvol) } };
        if (floorCreate.floor.length) {
          for (const f of Object.keys(FLOORS) as FloorKind[]) {
            const s = summary(`\`docker volume create -d ${FLOORS[f]} vN\` (the ${f === 'floor' ? 'floor' : 'off-loop floor'} as a legacy plugin; hostvol's column)`, { local: create.local, hostvol: floorCreate[f] });
            opt.log(`  ${mode}: volume create on the ${f} ${fmt(s.ratio)}× local`);
            lines.push(`| ${mode} ${s.line}`);
          }
          figure.floorCreateMs = { floor: median(floorCreate.floor), offloop: median(floorCreate.offloop), local: median(create.local) };
        }
        figures.push(figure);
      } catch (err) {
        // The command and the last line of its stderr (the harness's CommandError carries both).
        const msg = (err as Error).message.split('\n').filter((l) => l.trim() && l.trim() !== 'stderr:');
        const why = `failed: ${msg[0]}${msg.length > 1 ? `: ${msg[msg.length - 1].replace(/^stderr: /, '')}` : ''}`;
        opt.log(`  ${mode} ${why}`);
        figures.push({ mode, notRun: why });
      }
    }
  } finally {
    await e.docker(['plugin', 'rm', '-f', MANAGED], { allowFail: true });
    const notes = await e.teardown();
    const left = e.leftovers();
    e.killAllSync();
    if (notes.length) opt.log(`  teardown: ${notes.join('; ')}`);
    if (left.length) {
      opt.log(`  teardown left state behind: ${left.join('; ')}`);
      lines.push('', `Teardown left state behind: ${left.join('; ')}`);
    }
  }
  for (const f of figures) if (f.notRun) lines.push('', `${f.mode}: ${f.notRun}`);
  return { lines, figures };
}
