// Builds the slowfsync.c LD_PRELOAD shim with the system C compiler and gives the environment that
// makes a `hostvol serve` child see a disk whose fsync takes `delayMs` longer.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const CC = '/usr/bin/cc';
const SOURCE = path.join(__dirname, 'slowfsync.c');

/** Compiles the shim into `outDir`; fails (never skips) with what to install when there is no compiler. */
export function buildShim(outDir: string): string {
  if (!fs.existsSync(CC)) {
    throw new Error(`the slow-disk group builds its LD_PRELOAD shim with ${CC}, which is missing: install a C compiler (apt-get install gcc)`);
  }
  fs.mkdirSync(outDir, { recursive: true });
  const out = path.join(outDir, 'slowfsync.so');
  try {
    execFileSync(CC, ['-shared', '-fPIC', '-O2', '-Wall', '-Werror', '-o', out, SOURCE, '-ldl'], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`compiling ${SOURCE} failed: ${e.stderr?.toString() || e.message}`);
  }
  return out;
}

export interface SlowFsync {
  shim: string;
  delayMs: number;
  /** Only fds whose path starts with this are delayed (the state directory, not the log). */
  pathPrefix: string;
  /** One byte is appended here per delayed call. */
  countFile: string;
}

export function slowFsyncEnv(s: SlowFsync): NodeJS.ProcessEnv {
  return {
    LD_PRELOAD: s.shim,
    HOSTVOL_TEST_FSYNC_DELAY_MS: String(s.delayMs),
    HOSTVOL_TEST_FSYNC_PATH: s.pathPrefix,
    HOSTVOL_TEST_FSYNC_COUNT: s.countFile,
  };
}

/** How many fsync-family calls the shim delayed so far. */
export function delayedCalls(s: SlowFsync): number {
  return fs.statSync(s.countFile, { throwIfNoEntry: false })?.size ?? 0;
}
