// The crash-consistency group's model (crash.test.ts): what hostvol acknowledged, and so what must
// hold after any kill. It is updated only from replies, and from the store as a kill left it for the
// one request that was in flight.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isErr, isOk, type Reply } from './client';
import type { Invariants } from './figures';
import { inside } from './sandbox';
import type { StoreCopy } from './store';
import { LeaseCounts } from './lease-counts';

export type Flavor = 'plain' | 'ro' | 'delete' | 'new' | 'new-ro' | 'pre' | 'pre-delete';
export const FLAVORS: Flavor[] = ['plain', 'ro', 'delete', 'new', 'new-ro', 'pre', 'pre-delete'];

export interface MVol {
  flavor: Flavor;
  path: string;
  ro: boolean;
  /** Explicit, else `delete` only for a directory hostvol made in its data root (-o path= keeps). */
  onRemove: 'keep' | 'delete';
  /** The first directory Create had to make (what `mkdir -p` made), as the test saw it beforehand. */
  made?: string;
}

export type Op =
  | { kind: 'create'; name: string; flavor: Flavor; existed: boolean; made?: string; isNew: boolean }
  | { kind: 'remove'; name: string; isNew?: undefined }
  | { kind: 'mount' | 'unmount'; name: string; id: string };

export interface CrashDirs {
  data: string;
  allowNew: string;
  allowPre: string;
  mounts: string;
  outside: string;
}

export class CrashModel {
  readonly vols = new Map<string, MVol>();
  readonly leases = new LeaseCounts(); // volume -> id -> count
  /** Directories that may exist without a record: made by the test, or data kept by onremove=keep. */
  readonly foreign = new Set<string>();
  /**
   * Empty directories hostvol made for a removed volume while another volume still lived below them:
   * it removes only what it made for the volume at hand and only when empty, so these may stay.
   */
  readonly sharedMade = new Set<string>();
  landedEitherWay = 0;

  constructor(readonly dirs: CrashDirs, readonly inv: Invariants) {}

  flavorPath(name: string, f: Flavor): string {
    const d = this.dirs;
    return f.startsWith('new') ? path.join(d.allowNew, name) : f.startsWith('pre') ? path.join(d.allowPre, name) : path.join(d.data, name);
  }

  flavorOpts(name: string, f: Flavor): Record<string, string> | null {
    switch (f) {
      case 'plain': return null;
      case 'ro': return { ro: '' };
      case 'delete': return { onremove: 'delete' };
      case 'new': return { path: this.flavorPath(name, f) };
      case 'new-ro': return { mountpoint: this.flavorPath(name, f), o: 'ro' };
      case 'pre': return { path: this.flavorPath(name, f) };
      case 'pre-delete': return { path: this.flavorPath(name, f), onremove: 'delete' };
    }
  }

  static marker(name: string): string {
    return `data of ${name}\n`;
  }

  /** A directory that existed before hostvol: volumes on it are createdBy "existing". */
  makePre(name: string): void {
    const p = path.join(this.dirs.allowPre, name);
    fs.mkdirSync(p, { recursive: true });
    fs.writeFileSync(path.join(p, 'pre'), 'made by the test\n');
    this.foreign.add(p);
  }

  /** An acknowledged (or landed) Create: the model gains the volume and the test writes data into it. */
  created(name: string, flavor: Flavor, existed: boolean, made?: string): void {
    const p = this.flavorPath(name, flavor);
    const opts = this.flavorOpts(name, flavor);
    const hasPath = opts?.path !== undefined || opts?.mountpoint !== undefined;
    const onRemove = flavor.endsWith('delete') || (!existed && !hasPath) ? 'delete' : 'keep';
    this.vols.set(name, { flavor, path: p, ro: flavor === 'ro' || flavor === 'new-ro', onRemove, made });
    this.foreign.delete(p);
    try {
      fs.writeFileSync(path.join(p, `.marker-${name}`), CrashModel.marker(name));
    } catch (err) {
      this.inv.check(false, `volume ${name} was acknowledged but its directory ${p} is unusable: ${(err as Error).message}`);
    }
  }

  removed(name: string): void {
    const v = this.vols.get(name)!;
    this.vols.delete(name);
    this.leases.delete(name);
    if (v.onRemove === 'keep') this.foreign.add(v.path);
    else this.foreign.delete(v.path);
    for (let p = path.dirname(v.path); v.onRemove === 'delete' && v.made && inside(p, v.made); p = path.dirname(p)) {
      if ([...this.vols.values()].some((o) => inside(o.path, p)) || [...this.foreign].some((f) => inside(f, p))) this.sharedMade.add(p);
    }
  }

  expectReply(r: Reply, ok: boolean, what: string): void {
    this.inv.check(ok ? isOk(r) : isErr(r), () => `${what}: expected ${ok ? 'success' : 'Err'}, got HTTP ${r.status} ${r.text.slice(0, 300)}`);
  }

  /**
   * After a kill: the store as the dead process left it, checked and used to settle the op in flight.
   * Returns whether the volume of an in-flight Create or Remove must exist after the restart: its
   * record decides, since Create answers only after 'ready' is durable and start-up undoes every
   * 'creating' record and finishes every 'removing' one.
   */
  settleFromStore(copy: StoreCopy, op: Op | undefined): boolean | undefined {
    const inv = this.inv;
    inv.check(copy.integrity === 'ok', () => `store integrity after kill: ${copy.integrity}`);
    if (op && (op.kind === 'mount' || op.kind === 'unmount') && this.vols.has(op.name)) {
      const before = this.leases.count(op.name, op.id);
      const stored = copy.leases.find((l) => l.volume === op.name && l.id === op.id)?.count ?? 0;
      const after = op.kind === 'mount' ? before + 1 : Math.max(0, before - 1);
      if (inv.check(stored === before || stored === after, `${op.kind} ${op.name}/${op.id} in flight: stored count ${stored}, acknowledged ${before}`)) {
        if (stored !== before) this.landedEitherWay++;
        this.leases.setCount(op.name, op.id, stored);
      }
    }
    // A Remove in flight drops the volume's leases (lost Unmounts) one by one before its 'removing'
    // mark: each is either still as acknowledged or gone, never another count.
    if (op?.kind === 'remove' && this.vols.has(op.name)) {
      for (const [id, n] of this.leases.get(op.name) ?? []) {
        const stored = copy.leases.find((l) => l.volume === op.name && l.id === id)?.count ?? 0;
        if (inv.check(stored === n || stored === 0, `Remove ${op.name} in flight: lease ${id} stored ${stored}, acknowledged ${n}`)) this.leases.setCount(op.name, id, stored);
      }
    }
    const want = [...this.leases].flatMap(([vol, ids]) => [...ids].map(([id, n]) => `${vol}/${id}=${n}`)).sort();
    const got = copy.leases.map((l) => `${l.volume}/${l.id}=${l.count}`).sort();
    inv.check(JSON.stringify(want) === JSON.stringify(got), () => `lease counts after kill: store ${got.join(' ')} / acknowledged ${want.join(' ')}`);
    const inflightName = (op?.kind === 'create' && op.isNew) || (op?.kind === 'remove' && this.vols.has(op.name)) ? op.name : undefined;
    for (const row of copy.volumes) {
      if (row.name === inflightName) continue;
      inv.check(this.vols.has(row.name) && row.state === 'ready', () => `store row ${row.name} (${row.state}) does not match the acknowledged volumes`);
    }
    for (const name of this.vols.keys()) {
      if (name !== inflightName) inv.check(copy.volumes.some((r) => r.name === name), `acknowledged volume ${name} has no store row`);
    }
    if (!inflightName) return undefined;
    const row = copy.volumes.find((r) => r.name === inflightName);
    if (op!.kind === 'create') inv.check(row?.state !== 'removing', `Create ${inflightName} in flight left a 'removing' record`);
    return row?.state === 'ready';
  }
}
