// The two servers under test as child processes (hostvol exactly as dockerd meets it: `node dist/cli.js
// serve`), their start-up time (exec to first answered Get), peak RSS, and the pre-populated stores.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { oneRequest } from './wire';

export const REPO = path.resolve(__dirname, '../../..'); // from bench/out/bench
export const CLI_JS = path.join(REPO, 'dist/cli.js');
/** hostvol's own libc calls, which the floor's Mount uses too (same syscalls, same worker thread). */
export const LIBC_JS = path.join(REPO, 'dist/host/libc.js');
export const FLOOR_JS = path.join(__dirname, 'floor.js');
export const OFFLOOP_JS = path.join(__dirname, 'floor-offloop.js');

export type Kind = 'floor' | 'hostvol';
/** The off-loop floor (floor-offloop.ts) runs only in the durable figures, beside the other two. */
export type Server = Kind | 'offloop';

/** A store with `count` volumes named like names(count), and the floor's copy of it. */
export interface Dataset {
  count: number;
  dir: string;
  dataRoot: string;
  stateDir: string;
  /** The floor's own copy of the store, data root and mounts dir: the two never touch each other's files. */
  floorDb: string;
  floorDataRoot: string;
  floorMounts: string;
  /** The off-loop floor's own copy, likewise. */
  offloopDb: string;
  offloopDataRoot: string;
  offloopMounts: string;
}

export interface Running {
  kind: Server;
  pid: number;
  socket: string;
  /** Exec to the first answered Get, in ms. */
  startupMs: number;
  stop(): Promise<void>;
}

export const volumeName = (i: number) => `bv${String(i).padStart(6, '0')}`;
export const names = (count: number) => Array.from({ length: count }, (_, i) => volumeName(i));

/**
 * Starts one server on a dataset and waits until it answers a Get for `probe` (any answer counts).
 * `env` is added to the environment (LD_PRELOAD for the fsync-delay figure).
 */
export async function start(kind: Server, ds: Dataset, probe: string, env: Record<string, string> = {}): Promise<Running> {
  const socket = path.join(ds.dir, `${kind}.sock`);
  const log = fs.openSync(path.join(ds.dir, `${kind}.log`), 'a');
  const argv =
    kind === 'hostvol'
      ? [CLI_JS, 'serve', '--socket', socket, '--data-root', ds.dataRoot, '--state-dir', ds.stateDir, '--log-level', 'info']
      : kind === 'floor'
        ? [FLOOR_JS, socket, ds.floorDb, fs.realpathSync(ds.floorDataRoot), ds.floorMounts, LIBC_JS]
        : [OFFLOOP_JS, socket, ds.offloopDb, fs.realpathSync(ds.offloopDataRoot), ds.offloopMounts];
  const t0 = performance.now();
  const child = spawn(process.execPath, argv, { stdio: ['ignore', log, log], env: { ...process.env, ...env } });
  fs.closeSync(log);
  let exited: string | undefined;
  const gone = new Promise<void>((resolve) =>
    child.once('exit', (code, sig) => {
      exited = `exited with ${sig ?? code}`;
      resolve();
    }),
  );
  const startupMs = await firstAnswer(socket, probe, t0, () => exited).catch(async (err) => {
    child.kill('SIGKILL');
    await gone;
    const tail = fs.readFileSync(path.join(ds.dir, `${kind}.log`), 'utf8').split('\n').slice(-10).join('\n');
    throw new Error(`${kind} did not start: ${(err as Error).message}\n${tail}`);
  });
  return { kind, pid: child.pid!, socket, startupMs, stop: () => stop(child, gone) };
}

async function firstAnswer(socket: string, name: string, t0: number, exited: () => string | undefined): Promise<number> {
  const until = t0 + 30_000;
  while (performance.now() < until) {
    const why = exited();
    if (why) throw new Error(why);
    try {
      await oneRequest(socket, '/VolumeDriver.Get', { Name: name }, 30_000);
      return performance.now() - t0;
    } catch {
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  throw new Error('no answer within 30 s');
}

async function stop(child: ChildProcess, gone: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await gone;
  clearTimeout(timer);
}

/** Peak resident set size (VmHWM) of a live process, in MB. */
export function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * A store holding `count` ready volumes: hostvol is started once so the schema exists, stopped, and
 * the rows are inserted directly in one transaction (creating 100k volumes through the API would
 * take minutes). The floors get copies of the same file.
 */
export async function makeDataset(root: string, count: number): Promise<Dataset> {
  const dir = path.join(root, `ds${count}`);
  const ds: Dataset = {
    count,
    dir,
    dataRoot: path.join(dir, 'data'),
    stateDir: path.join(dir, 'state'),
    floorDb: path.join(dir, 'floor.db'),
    floorDataRoot: path.join(dir, 'floor-data'),
    floorMounts: path.join(dir, 'floor-mounts'),
    offloopDb: path.join(dir, 'offloop.db'),
    offloopDataRoot: path.join(dir, 'offloop-data'),
    offloopMounts: path.join(dir, 'offloop-mounts'),
  };
  fs.mkdirSync(ds.floorDataRoot, { recursive: true });
  fs.mkdirSync(ds.offloopDataRoot, { recursive: true });
  const h = await start('hostvol', ds, 'none');
  await h.stop();
  const dataRoot = fs.realpathSync(ds.dataRoot);
  const db = new Database(path.join(ds.stateDir, 'hostvol.db'));
  const insert = db.prepare(
    `INSERT INTO volumes (name, path, options, created_by, created_at, state, made)
     VALUES (?, ?, '{"readOnly":false}', 'hostvol', ?, 'ready', ?)`,
  );
  const base = Date.parse('2026-01-01T00:00:00Z');
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const p = path.join(dataRoot, volumeName(i));
      insert.run(volumeName(i), p, new Date(base + i * 1000).toISOString(), p);
    }
  })();
  db.close();
  fs.copyFileSync(path.join(ds.stateDir, 'hostvol.db'), ds.floorDb);
  fs.copyFileSync(path.join(ds.stateDir, 'hostvol.db'), ds.offloopDb);
  return ds;
}

/**
 * Detaches every mount under `dir` (deepest first), so that removing the run's directory cannot
 * descend through a bind mount a killed server left behind. Returns what it unmounted.
 */
export function unmountUnder(dir: string): string[] {
  const real = fs.realpathSync(dir);
  // mountinfo field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
  const points = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p).map((p) => p.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p.startsWith(`${real}/`)).sort((a, b) => b.length - a.length);
  for (const p of points) execFileSync('umount', ['-l', p]);
  return points;
}
