// The power-cut group's workload: a few clients, each owning its own volume names (so the order of
// operations on one name, and therefore the model, is exact), sending Create / Remove / Mount /
// Unmount and writing small files into the volumes until told to stop. A request without a reply
// when the power goes is left "in flight" for the check after restart to settle.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TransportError, isErr, isOk, type Client, type Reply } from './client';
import type { Invariants, Rng } from './figures';
import { randomAsk, sameCanon, type Ask, type PowerModel } from './powercut-model';

export type Op =
  | { kind: 'create'; name: string; ask: Ask; existed: boolean }
  | { kind: 'remove'; name: string }
  | { kind: 'mount' | 'unmount'; name: string; id: string };

export const IDS = ['a', 'b', 'c0ffee'.padEnd(64, '0')];

export interface Tally {
  requests: number;
  filesSynced: number;
  filesUnsynced: number;
}

/** The last requests of all clients with their outcome, oldest first: what a failure message shows. */
export class Journal {
  private readonly entries: { at: number; what: string; outcome?: string }[] = [];

  constructor(private readonly keep = 24) {}

  /** Notes a request as sent; the returned function records its outcome. */
  sent(what: string): (outcome: string) => void {
    const e: { at: number; what: string; outcome?: string } = { at: Date.now(), what };
    this.entries.push(e);
    if (this.entries.length > this.keep) this.entries.shift();
    return (outcome) => (e.outcome = outcome);
  }

  note(what: string): void {
    this.sent(what)('');
  }

  format(): string {
    const t = (at: number) => new Date(at).toISOString().slice(11, 23);
    return this.entries.map((e) => `  ${t(e.at)} ${e.what}${e.outcome === '' ? '' : ` -> ${e.outcome ?? 'no reply yet'}`}`).join('\n') || '  (none)';
  }
}

/** Runs one client until `stopped()`; resolves with the request it had in flight when it stopped, if any. */
export async function runClient(
  client: Client,
  names: string[],
  model: PowerModel,
  rng: Rng,
  inv: Invariants,
  tally: Tally,
  stopped: () => boolean,
  journal: Journal,
): Promise<Op | undefined> {
  let inflight: Op | undefined;
  const expectReply = (r: Reply, ok: boolean, what: string) =>
    inv.check(ok ? isOk(r) : isErr(r), () => `${what}: expected ${ok ? 'success' : 'Err'}, got HTTP ${r.status} ${r.text.slice(0, 300)}`);
  const send = async (what: string, op: Op | undefined, call: () => Promise<Reply>): Promise<Reply> => {
    inflight = op;
    tally.requests++;
    const settle = journal.sent(what);
    try {
      const r = await call();
      settle(`HTTP ${r.status} ${r.text.trim().slice(0, 160)}`);
      inflight = undefined;
      return r;
    } catch (err) {
      settle(`no reply: ${(err as Error).message}`);
      throw err;
    }
  };
  try {
    while (!stopped()) {
      const name = rng.pick(names);
      const v = model.vols.get(name);
      const roll = rng.next();
      if (roll < 0.3) {
        const ask = v && rng.chance(0.6) ? v.ask : randomAsk(rng, model.roots, name);
        if (v) {
          // Create is idempotent with the same options and refused with others; nothing changes either way.
          const r = await send(`Create ${name} again ${JSON.stringify(ask.opts)}`, undefined, () => client.create(name, ask.opts));
          expectReply(r, sameCanon(v.ask.canon, ask.canon), `Create ${name} again ${JSON.stringify(ask.opts)} (model ${JSON.stringify(v.ask.opts)})`);
          continue;
        }
        const existed = await exists(ask.dir);
        const present = [];
        for (let p = path.dirname(ask.dir); p !== model.roots.data && p !== model.roots.allow; p = path.dirname(p)) if (await exists(p)) present.push(p);
        model.notePresent(present);
        const r = await send(`Create ${name} ${JSON.stringify(ask.opts)}`, { kind: 'create', name, ask, existed }, () => client.create(name, ask.opts));
        if (expectReply(r, true, `Create ${name} ${JSON.stringify(ask.opts)}`)) model.created(name, ask, existed);
      } else if (roll < 0.5) {
        const id = rng.pick(IDS);
        const r = await send(`Mount ${name} ${id.slice(0, 8)}`, { kind: 'mount', name, id }, () => client.mount(name, id));
        if (expectReply(r, !!v, `Mount ${name} ${id}`) && v) {
          const want = path.join(model.roots.mounts, name);
          inv.check(r.json.Mountpoint === want, () => `Mount ${name} returned ${r.json.Mountpoint}, expected ${want}`);
          model.leases.setCount(name, id, model.leases.count(name, id) + 1);
        }
      } else if (roll < 0.7) {
        const held = [...(model.leases.get(name)?.keys() ?? [])];
        const id = held.length && rng.chance(0.8) ? rng.pick(held) : rng.pick(IDS);
        const r = await send(`Unmount ${name} ${id.slice(0, 8)}`, { kind: 'unmount', name, id }, () => client.unmount(name, id));
        if (expectReply(r, !!v, `Unmount ${name} ${id}`) && v) model.leases.setCount(name, id, model.leases.count(name, id) - 1);
      } else if (roll < 0.82) {
        const leased = model.leases.has(name);
        const r = await send(`Remove ${name}`, { kind: 'remove', name }, () => client.remove(name));
        // With leases left, hostvol removes only if no container has the directory mounted: either reply is fair.
        if (!v || !leased) expectReply(r, !!v, `Remove ${name}`);
        if (v && isOk(r)) model.removed(name);
      } else if (v) {
        await writeFile(model, name, rng, inv, tally, stopped);
      }
    }
    return undefined;
  } catch (err) {
    if (!(err instanceof TransportError) && !stopped()) throw err;
    if (err instanceof TransportError && !stopped()) inv.check(false, `a request failed while the server was running: ${err.message}`);
    return inflight;
  }
}

let serial = 0;

/**
 * Writes a small file into a volume: through its mountpoint while it is mounted read-write (the way a
 * container does), into its directory otherwise. Sometimes fsyncs the file and the directory, and only
 * then counts it as data that must outlive a cut; an unsynced file may go (the layer drops it).
 * The directory is opened first and synced last: a cut between the steps makes that sync fail on the
 * dead mount instead of succeeding on the fresh one, which would claim a file the cut took.
 */
async function writeFile(model: PowerModel, name: string, rng: Rng, inv: Invariants, tally: Tally, stopped: () => boolean): Promise<void> {
  const v = model.vols.get(name)!;
  const mounted = path.join(model.roots.mounts, name);
  const file = `f${++serial}`;
  const content = `${name} ${file} ${'x'.repeat(rng.int(3000))}\n`;
  if (model.leases.has(name) && v.ask.canon.readOnly) {
    const err = await fs.promises.writeFile(path.join(mounted, file), content).then(() => undefined, (e: NodeJS.ErrnoException) => e);
    if (err?.code !== 'EIO' && err?.code !== 'ENOTCONN') {
      inv.check(err?.code === 'EROFS', () => `write into read-only volume ${name} through ${mounted}: ${err?.code ?? 'it succeeded'}, expected EROFS`);
    }
  }
  const dir = model.leases.has(name) && !v.ask.canon.readOnly ? mounted : v.ask.dir;
  const sync = rng.chance(0.6);
  const failed = (e: unknown) => inv.check(stopped(), () => `writing ${file} into volume ${name} at ${dir}: ${(e as Error).message}`);
  const dh = await fs.promises.open(dir, 'r').catch((e) => void failed(e));
  if (!dh) return;
  try {
    const fh = await fs.promises.open(path.join(dir, file), 'wx');
    try {
      await fh.writeFile(content);
      if (sync) await fh.sync();
    } finally {
      await fh.close().catch(() => undefined);
    }
    if (!sync) {
      tally.filesUnsynced++;
      return;
    }
    await dh.sync();
    tally.filesSynced++;
    v.files.set(file, content);
  } catch (e) {
    // In the cut, the file is in neither state for sure, so nothing is required of it.
    failed(e);
  } finally {
    await dh.close().catch(() => undefined);
  }
}

export const exists = (p: string) => fs.promises.lstat(p).then(() => true, () => false);
