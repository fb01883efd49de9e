// The fsync-delay shim (test/reliability/lib/slowfsync.c, an LD_PRELOAD library that delays fsync and
// fdatasync of files under a path prefix): compiled into bench/out with /usr/bin/cc, then checked by
// timing one fsync under the prefix in a child with the shim loaded, so the report states the delay
// the run measured, not the one it asked for.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO } from './servers';

export const SHIM_SRC = path.join(REPO, 'test/reliability/lib/slowfsync.c');
const DELAY_VAR = 'HOSTVOL_TEST_FSYNC_DELAY_MS';
const PATH_VAR = 'HOSTVOL_TEST_FSYNC_PATH';

export type Shim = { env: Record<string, string>; fsyncMs: number } | { notRun: string };

/**
 * Builds the shim and returns the environment that delays every fsync under `prefix` by `delayMs`
 * (the two variables the shim reads, checked against its source so a rename cannot go unnoticed).
 */
export function buildShim(prefix: string, delayMs: number): Shim {
  if (!fs.existsSync(SHIM_SRC)) return { notRun: `shim missing (${path.relative(REPO, SHIM_SRC)})` };
  const src = fs.readFileSync(SHIM_SRC, 'utf8');
  const vars = [...new Set([...src.matchAll(/getenv\s*\(\s*"([A-Za-z0-9_]+)"\s*\)/g)].map((m) => m[1]))];
  if (!vars.includes(DELAY_VAR) || !vars.includes(PATH_VAR)) {
    return { notRun: `${path.relative(REPO, SHIM_SRC)} reads ${vars.join(', ') || 'no variables'}; expected ${DELAY_VAR} and ${PATH_VAR}` };
  }
  const lib = path.join(REPO, 'bench/out/slowfsync.so');
  try {
    execFileSync('/usr/bin/cc', ['-shared', '-fPIC', '-O2', '-o', lib, SHIM_SRC, '-ldl'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    return { notRun: `cc failed on ${path.relative(REPO, SHIM_SRC)}: ${String((err as { stderr?: Buffer }).stderr ?? err).split('\n')[0]}` };
  }
  const env = { LD_PRELOAD: lib, [DELAY_VAR]: String(delayMs), [PATH_VAR]: prefix };
  const probe = path.join(prefix, 'shim-probe');
  const code = `const fs=require('fs');const fd=fs.openSync(${JSON.stringify(probe)},'w');fs.writeSync(fd,'x');` +
    `const t=performance.now();fs.fsyncSync(fd);process.stdout.write(String(performance.now()-t));fs.closeSync(fd);fs.rmSync(${JSON.stringify(probe)})`;
  const out = execFileSync(process.execPath, ['-e', code], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { env, fsyncMs: Number(out) };
}
