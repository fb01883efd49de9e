// The etcd store's view of what other nodes do to volume records: one watch on <prefix>/volumes/
// from the revision start-up read, reported in order. A node's own writes come back on the watch
// too, possibly before the write's own reply; they must not be reported (they would undo a newer
// state the driver already holds). So each own write is bracketed (begin/end): events for that name
// wait while one is in flight, and only events newer than the newest revision known for the name,
// own or not, are reported.
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { describe } from '../errors';
import { decodeRecord, plain, type Keys } from './etcd-keys';
import type { RemoteChange } from './store';

interface Pending {
  revision: number;
  change: RemoteChange;
}

export class RecordFeed {
  private watcher?: Watcher;
  private readonly listeners = new Set<(c: RemoteChange) => void>();
  /** Reports that arrived before anyone listened (start-up is still recovering): handed to the first listener. */
  private early: RemoteChange[] | undefined = [];
  /** Per name: own writes in flight, events held back meanwhile, newest revision known. */
  private readonly names = new Map<string, { inFlight: number; held: Pending[]; seen: number }>();

  constructor(
    private readonly keys: Keys,
    private readonly log: Logger,
  ) {}

  async start(client: Etcd3, fromRevision: number): Promise<void> {
    this.watcher = await client.watch().prefix(this.keys.volumes()).startRevision(String(fromRevision)).create();
    this.watcher.on('put', (kv) => this.event(kv, false));
    this.watcher.on('delete', (kv) => this.event(kv, true));
    this.watcher.on('error', (err) => this.log.warn({ err: describe(err) }, 'etcd watch error; it resumes from the last revision seen'));
  }

  listen(listener: (c: RemoteChange) => void): () => void {
    this.listeners.add(listener);
    const early = this.early ?? [];
    this.early = undefined;
    for (const c of early) listener(c);
    return () => this.listeners.delete(listener);
  }

  /** An own write of `name` starts: its echo must not be reported as another node's. */
  begin(name: string): void {
    this.state(name).inFlight++;
  }

  /** It ended; `revision` when it committed (unknown when it failed or its outcome is unknown). */
  end(name: string, revision?: number): void {
    const s = this.state(name);
    s.inFlight--;
    if (revision !== undefined) s.seen = Math.max(s.seen, revision);
    if (s.inFlight > 0) return;
    for (const p of s.held.splice(0)) this.deliver(name, p);
  }

  /** Known revision of a record read outside the watch (start-up). */
  saw(name: string, revision: number): void {
    const s = this.state(name);
    s.seen = Math.max(s.seen, revision);
  }

  stop(): void {
    void this.watcher?.cancel().catch(() => undefined);
    this.listeners.clear();
  }

  private event(kv: IKeyValue, deleted: boolean): void {
    const name = kv.key.toString().slice(this.keys.volumes().length);
    let record = null;
    if (!deleted) {
      try {
        record = plain(decodeRecord(kv.value));
      } catch (err) {
        this.log.error({ key: kv.key.toString(), err: describe(err) }, 'unreadable volume record in etcd; ignored');
        return;
      }
    }
    const revision = Number(kv.mod_revision);
    const p = { revision, change: { name, record, current: () => this.state(name).seen === revision } };
    const s = this.state(name);
    if (s.inFlight > 0) s.held.push(p);
    else this.deliver(name, p);
  }

  private deliver(name: string, p: Pending): void {
    const s = this.state(name);
    if (p.revision <= s.seen) return;
    s.seen = p.revision;
    if (this.early) this.early.push(p.change);
    for (const l of this.listeners) l(p.change);
  }

  private state(name: string) {
    let s = this.names.get(name);
    if (!s) this.names.set(name, (s = { inFlight: 0, held: [], seen: 0 }));
    return s;
  }
}
