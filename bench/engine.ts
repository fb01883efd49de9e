// End to end through a real engine: a private dockerd from the e2e harness (test/e2e/lib), hostvol as
// its legacy plugin, and the built-in `local` driver, timed as the docker CLI sees them, interleaved.
// Skipped, with the reason in the report, when no engine can be started here.
import * as fs from 'node:fs';
import { DOCKER_CLI, startEngine, type Engine } from '../test/e2e/lib/engine';
import { CLI_JS, Hostvol } from '../test/e2e/lib/hostvol';
import { BB_IMAGE } from '../test/e2e/lib/images';
import { CLI_JS as REPO_CLI_JS } from './servers';
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
  targets: { text: string; met?: boolean }[];
}

const N = 30;

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

function summary(label: string, p: Pair): { line: string; ratio: number } {
  const ratio = median(p.hostvol.map((h, i) => h / p.local[i]));
  const s = (xs: number[]) => `${fmt(median(xs))} / ${fmt(Math.min(...xs))} / ${fmt(quantile(xs, 0.9))}`;
  return { line: `| ${label} | ${s(p.local)} | ${s(p.hostvol)} | ${fmt(ratio)}× |`, ratio };
}

export async function runEngine(opt: { log: (l: string) => void; n?: number }): Promise<EngineResult> {
  const skip = (reason: string): EngineResult => {
    opt.log(`  skipped: ${reason}`);
    return { lines: [`Skipped: ${reason}.`], targets: [{ text: `end to end (skipped: ${reason})` }] };
  };
  const reason = whyNot();
  if (reason) return skip(reason);
  const n = opt.n ?? N;
  let engine: Engine | undefined;
  const t0 = performance.now();
  try {
    engine = await startEngine();
  } catch (err) {
    return skip(`the engine did not start: ${(err as Error).message.split('\n')[0]}`);
  }
  const e = engine;
  const lines: string[] = [];
  const targets: EngineResult['targets'] = [];
  try {
    // At info level, as in production (the harness's default is debug, for its request log).
    const hv = new BenchHostvol(e, { extraArgs: ['--log-level', 'info'] });
    e.addFinalizer(() => hv.shutdown()); // as startHostvol does
    await hv.start();
    const version = (await e.docker(['version', '--format', '{{.Server.Version}}'])).stdout.trim();
    opt.log(`  dockerd ${version} ready in ${fmt((performance.now() - t0) / 1000)} s; ${n} rounds, order alternating`);
    const create: Pair = { local: [], hostvol: [] };
    const runs: Pair = { local: [], hostvol: [] };
    // Warm-up: first calls pay plugin discovery (Activate) and image/layer caches.
    await e.docker(['volume', 'create', 'wl']);
    await e.docker(['volume', 'create', '-d', 'hostvol', 'wh']);
    for (const v of ['wl', 'wh']) await e.docker(['run', '--rm', '--pull', 'never', '--network', 'none', '-v', `${v}:/d`, BB_IMAGE, 'true']);
    for (let i = 0; i < n; i++) {
      const order: ('local' | 'hostvol')[] = i % 2 === 0 ? ['local', 'hostvol'] : ['hostvol', 'local'];
      for (const d of order) {
        const args = d === 'local' ? ['volume', 'create', `bl${i}`] : ['volume', 'create', '-d', 'hostvol', `bh${i}`];
        create[d].push(await timed(e, args));
      }
      for (const d of order) {
        const vol = d === 'local' ? `bl${i}` : `bh${i}`;
        runs[d].push(await timed(e, ['run', '--rm', '--pull', 'never', '--network', 'none', '-v', `${vol}:/d`, BB_IMAGE, 'true']));
      }
    }
    const c = summary('`docker volume create [-d hostvol] vN`', create);
    const r = summary(`\`docker run --rm -v vN:/d ${BB_IMAGE} true\` (--network none)`, runs);
    opt.log(`  volume create: local ${fmt(median(create.local))} ms, hostvol ${fmt(median(create.hostvol))} ms, ratio ${fmt(c.ratio)}×`);
    opt.log(`  docker run -v: local ${fmt(median(runs.local))} ms, hostvol ${fmt(median(runs.hostvol))} ms, ratio ${fmt(r.ratio)}×`);
    lines.push(
      `A private dockerd ${version} from the e2e harness (\`test/e2e/lib\`: own mount and network namespace, \`--bridge none\`), ` +
        `hostvol as its legacy plugin (\`--log-level info\`), busybox image \`${BB_IMAGE}\`. ${n} rounds; in each, both drivers, ` +
        'order alternating; each volume is created and then used by one `docker run`. Wall time of the docker CLI, ms: median / min / p90; ' +
        'ratio: median of the per-round ratios hostvol / local.',
      '',
      '| command | local | hostvol | ratio |',
      '|---|---:|---:|---:|',
      c.line,
      r.line,
    );
    targets.push({ text: `end to end, \`docker volume create\`: target ≤ 1.15× local; measured ${fmt(c.ratio)}×`, met: c.ratio <= 1.15 });
    targets.push({ text: `end to end, \`docker run -v\`: target ≤ 1.05× local; measured ${fmt(r.ratio)}×`, met: r.ratio <= 1.05 });
  } catch (err) {
    lines.push(`Failed: ${(err as Error).message.split('\n')[0]}`);
    targets.push({ text: `end to end (failed: ${(err as Error).message.split('\n')[0]})` });
    opt.log(`  failed: ${(err as Error).message}`);
  } finally {
    const notes = await e.teardown();
    const left = e.leftovers();
    e.killAllSync();
    if (notes.length) opt.log(`  teardown: ${notes.join('; ')}`);
    if (left.length) {
      opt.log(`  teardown left state behind: ${left.join('; ')}`);
      lines.push('', `Teardown left state behind: ${left.join('; ')}`);
    }
  }
  return { lines, targets };
}
