// The power-cut group's model: what hostvol acknowledged (volumes with the options asked, mount
// counts per ID), what the test itself wrote and fsynced into their directories, and which
// directories may exist without a volume (kept data, parents that were there before a Create).
// It changes only on an acknowledged reply, a completed fsync, or an in-flight request settled
// after the cut, so after every restart the driver and the disk must match it exactly.
import * as path from 'node:path';
import type { Rng } from './figures';
import { LeaseCounts } from './lease-counts';

/** The canonical options hostvol must report in Get's Status.options (mode as octal text). */
export interface Canon {
  path?: string;
  uid?: number;
  gid?: number;
  mode?: number;
  readOnly: boolean;
  onRemove?: 'keep' | 'delete';
}

/** One Create request: the raw Opts sent and what they must mean. */
export interface Ask {
  opts: Record<string, string> | null;
  canon: Canon;
  /** The volume's real directory. */
  dir: string;
}

export interface MVol {
  ask: Ask;
  createdBy: 'hostvol' | 'existing';
  onRemove: 'keep' | 'delete';
  /** Files the test wrote into the directory and fsynced (file and directory): name -> content. */
  files: Map<string, string>;
}

export interface Roots {
  data: string;
  allow: string;
  mounts: string;
}

const MODES = ['0700', '0750', '0755', '0775', '2775', '0777'];

/** A random Create for `name`: in the data root or at a nested `-o path=` (parents made by mkdir -p). */
export function randomAsk(rng: Rng, roots: Roots, name: string): Ask {
  const opts: Record<string, string> = {};
  const canon: Canon = { readOnly: false };
  let dir = path.join(roots.data, name);
  if (rng.chance(0.45)) {
    dir = path.join(roots.allow, name, 'p', 'q');
    canon.path = opts[rng.chance(0.8) ? 'path' : 'mountpoint'] = dir;
  }
  if (rng.chance(0.5)) canon.uid = Number((opts.uid = String(rng.pick([0, 1000, 1001, 65534]))));
  if (rng.chance(0.5)) canon.gid = Number((opts.gid = String(rng.pick([0, 100, 1000, 65534]))));
  if (rng.chance(0.5)) canon.mode = parseInt((opts.mode = rng.pick(MODES)), 8);
  if (rng.chance(0.25)) {
    canon.readOnly = true;
    if (rng.chance(0.5)) opts.ro = '';
    else opts.o = 'ro';
  }
  if (rng.chance(0.4)) canon.onRemove = opts.onremove = rng.pick(['keep', 'delete'] as const);
  return { opts: Object.keys(opts).length ? opts : null, canon, dir };
}

/** Status.options as hostvol shows it for `canon`. */
export function shownOptions(canon: Canon): Record<string, unknown> {
  return canon.mode === undefined ? { ...canon } : { ...canon, mode: `0${canon.mode.toString(8)}` };
}

export function sameCanon(a: Canon, b: Canon): boolean {
  return sortedJson(shownOptions(a)) === sortedJson(shownOptions(b));
}

export function sortedJson(o: unknown): string {
  return JSON.stringify(o, (_, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v));
}

export class PowerModel {
  readonly vols = new Map<string, MVol>();
  /** volume -> mount ID -> count, as acknowledged. */
  readonly leases = new LeaseCounts();
  /** Directories of removed volumes whose data stays (onremove=keep), with their synced files. */
  readonly kept = new Map<string, Map<string, string>>();
  /** Directories that existed before a Create that hostvol may therefore leave behind. */
  readonly before = new Set<string>();

  constructor(readonly roots: Roots) {}

  /** Mount IDs held, "vol/id=count", sorted: the form lease checks compare. */
  leaseList(): string[] {
    return [...this.leases].flatMap(([v, ids]) => [...ids].map(([id, n]) => `${v}/${id}=${n}`)).sort();
  }

  /** A Create acknowledged (or found landed after the cut). `existed`: the directory was there before it. */
  created(name: string, ask: Ask, existed: boolean): void {
    const createdBy = existed ? 'existing' : 'hostvol';
    const onRemove = ask.canon.onRemove ?? (createdBy === 'hostvol' && ask.canon.path === undefined ? 'delete' : 'keep');
    const files = this.kept.get(ask.dir) ?? new Map<string, string>();
    this.kept.delete(ask.dir);
    this.vols.set(name, { ask, createdBy, onRemove, files });
  }

  /** What exists above a volume's directory before its Create is, by definition, not hostvol's to remove. */
  notePresent(dirs: string[]): void {
    for (const d of dirs) this.before.add(d);
  }

  removed(name: string): void {
    const v = this.vols.get(name)!;
    this.vols.delete(name);
    this.leases.delete(name);
    if (v.onRemove === 'keep') this.kept.set(v.ask.dir, v.files);
    else this.before.delete(v.ask.dir);
  }

  /** Directories allowed to exist outside any volume: kept data, what was there before, and their parents. */
  allowedDir(dir: string): 'volume' | 'kept' | 'parent' | undefined {
    for (const v of this.vols.values()) if (v.ask.dir === dir) return 'volume';
    if (this.kept.has(dir)) return 'kept';
    if (this.before.has(dir)) return 'parent';
    const holds = (p: string) => p.startsWith(`${dir}/`);
    if ([...this.vols.values()].some((v) => holds(v.ask.dir)) || [...this.kept.keys()].some(holds)) return 'parent';
    return undefined;
  }
}
