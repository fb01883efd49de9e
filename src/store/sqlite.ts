// The embedded store: volume records and mount leases in SQLite (WAL, synchronous=FULL), every
// change on disk before its promise resolves. Start-up reads the records on this thread with a
// short-lived connection (sqlite-load.ts); then a worker thread owns the file for good and commits
// changes in groups (sqlite-worker.ts), so fsyncs neither stall the event loop nor queue up one by one.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ConflictError, HostvolError } from '../errors';
import { readStore } from './sqlite-load';
import { SCHEMA, sqliteWorkerMain, type FromWorker, type Op, type OpResult, type WorkerData } from './sqlite-worker';
import type { LeaseRecord, NodeLease, RecordState, RemoteChange, Snapshot, Store, StoreHealth, VolumeRecord } from './store';

type Done = Extract<OpResult, { ok: true }>;

interface Pending {
  op: Op;
  what: string;
  resolve: (done: Done) => void;
  reject: (err: Error) => void;
}

/** `idle`: the worker has not been asked to open the file yet (start-up may still be reading it). */
type Phase = 'idle' | 'opening' | 'open' | 'failed' | 'closed';

export class SqliteStore implements Store {
  /** One host's volumes: dockerd keeps them per node. */
  readonly scope = 'local';
  readonly file: string;
  private readonly worker: Worker;
  private phase: Phase = 'idle';
  private failure?: HostvolError;
  /** Changes waiting for the next commit; they all go in one batch once the one in flight returns. */
  private queue: Pending[] = [];
  private inFlight?: Pending[];
  private commits = 0;
  private ops = 0;
  private whenIdle: (() => void)[] = [];
  private whenClosed?: () => void;
  private closing?: Promise<void>;

  /** `node`: the name its leases are shown under (`--node-name`, default the hostname). */
  constructor(
    private readonly stateDir: string,
    readonly node: string = os.hostname(),
  ) {
    const madeDir = fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 }) !== undefined;
    this.file = path.join(stateDir, 'hostvol.db');
    const workerData: WorkerData = { betterSqlite3: require.resolve('better-sqlite3'), file: this.file, dir: stateDir, madeDir, schema: SCHEMA };
    // Started now, so the thread is up by the time start-up has read the records.
    this.worker = new Worker(`(${sqliteWorkerMain.toString()})()`, { eval: true, workerData });
    this.worker.on('message', (m: FromWorker) => this.onMessage(m));
    this.worker.on('error', (err) => this.onCrash(err));
    this.worker.unref();
  }

  /**
   * Reads every record here, closes that connection, and resolves once the worker holds the file: a
   * resolved load means this process owns the store (a second hostvol is refused from then on).
   */
  async load(): Promise<Snapshot> {
    if (this.phase !== 'idle') throw new HostvolError(`the state store ${this.file} was loaded already`);
    let snapshot: Snapshot;
    try {
      snapshot = readStore(this.file);
    } catch (err) {
      throw this.cannotOpen(err);
    }
    this.openWorker();
    await new Promise<void>((resolve) => this.whenIdle.push(resolve));
    if (this.failure) throw this.failure;
    return snapshot;
  }

  private openWorker(): void {
    this.phase = 'opening';
    this.worker.ref();
    this.worker.postMessage({ type: 'open' });
  }

  insertVolume(rec: VolumeRecord): Promise<VolumeRecord | undefined> {
    return this.write(`record volume "${rec.name}"`, { op: 'insertVolume', rec }).then((d) => d.existing);
  }

  setState(name: string, state: RecordState): Promise<void> {
    return this.write(`mark volume "${name}" ${state}`, { op: 'setState', name, state }).then(() => undefined);
  }

  deleteVolume(name: string): Promise<void> {
    return this.write(`forget volume "${name}"`, { op: 'deleteVolume', name }).then(() => undefined);
  }

  setLease(lease: LeaseRecord, opts: { exclusive?: boolean } = {}): Promise<number> {
    const what = `${lease.count > 0 ? 'record' : 'release'} a mount of volume "${lease.volume}"`;
    return this.write(what, { op: 'setLease', lease, exclusive: opts.exclusive === true }).then((d) => d.token ?? 0);
  }

  setGeneration(n: number): Promise<void> {
    return this.write('record the client generation', { op: 'setGeneration', n }).then(() => undefined);
  }

  dropLeasesFromOtherBoots(bootId: string): Promise<number> {
    return this.write('drop the mount leases of a previous boot', { op: 'dropLeasesFromOtherBoots', bootId }).then((d) => d.changes);
  }

  /** This node's leases, all of them: no other node writes this file. */
  leases(volume?: string): Promise<NodeLease[]> {
    const what = `read the mount leases of ${volume === undefined ? 'every volume' : `volume "${volume}"`}`;
    return this.write(what, { op: 'leases', volume: volume ?? null }).then((d) => (d.leases ?? []).map((l) => ({ ...l, node: this.node })));
  }

  /** Every record of this file is in the driver's table from load() on: nothing to look up. */
  lookup(_name: string): Promise<VolumeRecord | undefined> {
    return Promise.resolve(undefined);
  }

  /** No other node writes this file: nothing to report, ever. */
  watch(_listener: (change: RemoteChange) => void): () => void {
    return () => undefined;
  }

  health(): StoreHealth {
    if (this.failure) return { available: false, reason: this.failure.message };
    if (this.closing) return { available: false, reason: `the state store ${this.file} is closed` };
    return { available: true };
  }

  /** Commits so far, and the changes they carried: far fewer commits than changes is group commit at work. */
  stats(): { commits: number; ops: number } {
    return { commits: this.commits, ops: this.ops };
  }

  /**
   * Waits for every change queued so far to be committed (or refused), then closes the file and the
   * worker. Changes asked for once close() was called are refused.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.phase === 'opening' || this.inFlight || this.queue.length) await new Promise<void>((r) => this.whenIdle.push(r));
    if (this.phase === 'open') {
      this.worker.ref();
      const closed = new Promise<void>((r) => (this.whenClosed = r));
      this.worker.postMessage({ type: 'close' });
      await closed;
    }
    this.phase = 'closed';
    await this.worker.terminate();
  }

  private write(what: string, op: Op): Promise<Done> {
    if (this.closing) return Promise.reject(new HostvolError(`cannot ${what}: the state store ${this.file} is closed`));
    if (this.failure) return Promise.reject(this.failure);
    if (this.phase === 'idle') this.openWorker(); // a store that is written without being loaded
    return new Promise((resolve, reject) => {
      this.queue.push({ op, what, resolve, reject });
      this.pump();
    });
  }

  /** Sends everything queued as one batch, unless a batch is in flight: then it waits for that one. */
  private pump(): void {
    if (this.phase !== 'open' || this.inFlight || this.queue.length === 0) return;
    const batch = (this.inFlight = this.queue);
    this.queue = [];
    this.worker.ref();
    this.worker.postMessage({ type: 'batch', ops: batch.map((p) => p.op) });
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'opened' || m.type === 'openFailed') {
      this.phase = m.type === 'opened' ? 'open' : 'failed';
      if (m.type === 'openFailed') {
        this.failure = this.cannotOpen(m);
        for (const p of this.queue.splice(0)) p.reject(this.failure);
      }
      this.pump();
    } else if (m.type === 'batch') {
      const batch = this.inFlight!;
      this.inFlight = undefined;
      if (m.committed) this.commits++;
      this.ops += batch.length;
      // The next batch goes out before the callers run: their follow-up changes join the one after.
      this.pump();
      batch.forEach((p, i) => this.settle(p, m.results[i]));
    } else {
      this.whenClosed?.();
    }
    if (this.phase !== 'opening' && !this.inFlight && !this.queue.length) {
      this.worker.unref();
      for (const f of this.whenIdle.splice(0)) f();
    }
  }

  private settle(p: Pending, r: OpResult): void {
    if (r.ok) return p.resolve(r);
    if (r.conflict) return p.reject(new ConflictError(r.message));
    p.reject(
      new HostvolError(
        `cannot ${p.what} in the state store ${this.file}: ${r.code}: ${r.message}; ` +
          'free space on its file system or make it writable, then try again',
      ),
    );
  }

  private onCrash(err: Error): void {
    this.phase = 'failed';
    this.failure = new HostvolError(`the state store ${this.file} stopped working (${err.message}); restart hostvol`);
    for (const p of [...(this.inFlight ?? []), ...this.queue.splice(0)]) p.reject(this.failure);
    this.inFlight = undefined;
    for (const f of this.whenIdle.splice(0)) f();
    this.whenClosed?.();
  }

  private cannotOpen(err: unknown): HostvolError {
    if (err instanceof HostvolError) return err;
    const { code, message } = err as { code?: string; message?: string };
    if (code === 'SQLITE_BUSY') {
      return new HostvolError(
        `state directory ${this.stateDir} is in use by another hostvol process; stop it, or give this one another --state-dir`,
      );
    }
    // A read-only file system shows up as an I/O error on the lock (SQLITE_IOERR_LOCK).
    return new HostvolError(
      `cannot open the state store ${this.file}: ${code ? `${code}: ` : ''}${message}; ` +
        `${this.stateDir} must be on a writable file system with free space`,
    );
  }
}
