// Cluster mode against the embedded store, side by side in one run (issue 13): two hostvol servers
// as dockerd meets them (`node dist/cli.js serve`), one with the embedded SQLite store, one with
// `--etcd` on a real 3-member etcd cluster on loopback (the launcher the reliability tests use), each
// with its own data root and state directory. The same load figures (bench/loadgen.ts, a separate
// process) run against both, interleaved: figure by figure, the order alternating per repetition.
// Get answers from the node's table in both; Create+Remove and Mount+Unmount are etcd transactions
// (records, claims, leases) against SQLite commits. Every sentence of the section is generated from
// the medians measured here.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EtcdCluster } from '../test/reliability/lib/etcd-cluster';
import { runLoad, type LoadResult, type Work } from './loadgen';
import { CLI_JS } from './servers';
import { fmt, median } from './stats';
import { okJson, oneRequest } from './wire';

type Store = 'embedded' | 'etcd';
const STORES: Store[] = ['embedded', 'etcd'];
const GET_VOLUMES = 100;
const MOUNT_VOLUME = 'cm-rw';

interface Server {
  store: Store;
  pid: number;
  socket: string;
  stop(): Promise<void>;
}

interface ClusterFigure {
  id: string;
  title: string;
  concurrency: number;
  work: Work;
}

const FIGURES: ClusterFigure[] = [
  { id: 'get-c1', title: 'Get, c=1', concurrency: 1, work: { kind: 'get', names: getNames() } },
  { id: 'get-c8', title: 'Get, c=8', concurrency: 8, work: { kind: 'get', names: getNames() } },
  { id: 'cr-c1', title: 'Create+Remove pairs, c=1', concurrency: 1, work: { kind: 'createRemove', prefix: 'cc' } },
  { id: 'cr-c8', title: 'Create+Remove pairs, c=8', concurrency: 8, work: { kind: 'createRemove', prefix: 'cd' } },
  { id: 'mu-c1', title: 'Mount+Unmount pairs, c=1', concurrency: 1, work: { kind: 'mountUnmount', volumes: [MOUNT_VOLUME] } },
  { id: 'mu-c8', title: 'Mount+Unmount pairs, c=8', concurrency: 8, work: { kind: 'mountUnmount', volumes: [MOUNT_VOLUME] } },
];

function getNames(): string[] {
  return Array.from({ length: GET_VOLUMES }, (_, i) => `cg${String(i).padStart(3, '0')}`);
}

/** Starts hostvol on its own directories (with `--etcd` for the etcd store) and waits for its first answer. */
async function startServer(store: Store, dir: string, etcd: EtcdCluster): Promise<Server> {
  fs.mkdirSync(dir, { recursive: true });
  const socket = path.join(dir, 'hostvol.sock');
  const cluster = store === 'etcd' ? ['--etcd', etcd.urls.join(','), '--node-name', 'bench1', '--etcd-prefix', '/bench'] : [];
  const args = [CLI_JS, 'serve', '--socket', socket, '--data-root', path.join(dir, 'data'), '--state-dir', path.join(dir, 'state'), '--log-level', 'info', ...cluster];
  const log = fs.openSync(path.join(dir, 'hostvol.log'), 'a');
  const child = spawn(process.execPath, args, { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      await oneRequest(socket, '/VolumeDriver.List', {}, 5000);
      break;
    } catch (err) {
      if (child.exitCode !== null || Date.now() > until) {
        child.kill('SIGKILL');
        throw new Error(`hostvol with the ${store} store did not start (${(err as Error).message}); see ${dir}/hostvol.log`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await gone;
    clearTimeout(timer);
  };
  return { store, pid: child.pid!, socket, stop };
}

/** The volumes Get and Mount use, made through the API. */
async function prepare(s: Server): Promise<void> {
  for (const Name of [...getNames(), MOUNT_VOLUME]) okJson('Create', await oneRequest(s.socket, '/VolumeDriver.Create', { Name, Opts: null }));
}

type Results = Record<string, Record<Store, LoadResult[]>>;

export async function runClusterBench(o: { tmp: string; reps: number; scale?: number; log: (l: string) => void }): Promise<{ lines: string[] }> {
  const root = path.join(o.tmp, 'cluster');
  const etcd = await EtcdCluster.start(path.join(root, 'etcd'), 3);
  const servers: Server[] = [];
  const results: Results = {};
  try {
    for (const store of STORES) servers.push(await startServer(store, path.join(root, store), etcd));
    for (const s of servers) await prepare(s);
    for (let rep = 0; rep < o.reps; rep++) {
      for (const f of FIGURES) {
        for (const s of rep % 2 === 0 ? servers : [...servers].reverse()) {
          const r = await runLoad({
            socket: s.socket, serverPid: s.pid, mode: 'keepalive', concurrency: f.concurrency, work: f.work,
            warmupMs: 300 * (o.scale ?? 1), durationMs: 1500 * (o.scale ?? 1), maxOps: 2_000_000, minOps: 20,
          });
          if (r.errors) throw new Error(`${f.title} with the ${s.store} store: ${r.errors} failed requests, first: ${r.firstError}`);
          ((results[f.id] ??= { embedded: [], etcd: [] })[s.store]).push(r);
          o.log(`  [${rep + 1}] ${f.title.padEnd(28)} ${s.store.padEnd(8)} ${fmt(r.opsPerSec).padStart(7)} op/s  p50 ${fmt(r.p50Ms).padStart(6)} ms  p99 ${fmt(r.p99Ms).padStart(6)} ms`);
        }
      }
    }
  } finally {
    for (const s of servers) await s.stop();
    await etcd.stop();
  }
  return { lines: render(results) };
}

const med = (rs: LoadResult[], key: 'opsPerSec' | 'p50Ms' | 'p99Ms') => median(rs.map((r) => r[key]));
/** The median of the per-repetition ratios (etcd / embedded): robust to load drifting between repetitions. */
const ratio = (x: Record<Store, LoadResult[]>, key: 'opsPerSec' | 'p50Ms' | 'p99Ms') => median(x.etcd.map((r, i) => r[key] / x.embedded[i][key]));

function render(results: Results): string[] {
  const rows = ['| figure | metric | embedded (SQLite) | etcd (3 members) | ratio (etcd / embedded) | reps |', '|---|---|---:|---:|---:|---:|'];
  for (const f of FIGURES) {
    const x = results[f.id];
    if (!x) continue;
    const unit = f.work.kind === 'get' ? 'requests/s' : 'pairs/s';
    for (const [metric, key] of [[unit, 'opsPerSec'], ['p50 ms', 'p50Ms'], ['p99 ms', 'p99Ms']] as const) {
      rows.push(`| ${f.title} | ${metric} | ${fmt(med(x.embedded, key))} | ${fmt(med(x.etcd, key))} | ${fmt(ratio(x, key))}× | ${x.etcd.length} |`);
    }
  }
  const sentence = (id: string, what: string) => {
    const x = results[id];
    if (!x) return [];
    return [
      `- ${what}: p50 ${fmt(med(x.etcd, 'p50Ms'))} ms with etcd against ${fmt(med(x.embedded, 'p50Ms'))} ms embedded ` +
        `(${fmt(ratio(x, 'p50Ms'))}× the latency), ${fmt(med(x.etcd, 'opsPerSec'))} against ${fmt(med(x.embedded, 'opsPerSec'))} per second.`,
    ];
  };
  return [
    'Two `hostvol serve` processes in the same run: one with the embedded store, one with `--etcd` on a 3-member etcd ' +
      'cluster on loopback (each member its own process and data directory, `test/reliability/lib/etcd-cluster.ts`), each with ' +
      `its own data root. ${GET_VOLUMES} volumes for Get, one for Mount+Unmount (no Z), created through the API first. ` +
      'Figures interleaved (order alternating per repetition), each a 0.3 s warm-up and a 1.5 s window, keep-alive connections ' +
      '(bench/loadgen.ts); medians over the repetitions, ratio = median of the per-repetition ratios.',
    '',
    ...rows,
    '',
    ...sentence('get-c1', 'Get at c=1 (both answer from the node\'s table)'),
    ...sentence('cr-c1', 'Create+Remove at c=1 (etcd: record, directory claim and removal, each a guarded transaction; embedded: fsynced SQLite commits)'),
    ...sentence('cr-c8', 'Create+Remove at c=8'),
    ...sentence('mu-c1', 'Mount+Unmount at c=1 (etcd: a lease key and its guard in one transaction, then its release)'),
    ...sentence('mu-c8', 'Mount+Unmount at c=8'),
  ];
}
