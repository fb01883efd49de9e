// The volumes by name, with an index of their directories so that "does this directory overlap
// another volume's?" costs a few lookups, not a scan of every volume (Create with 100k volumes).
import * as path from 'node:path';
import type { Volume } from './volume';

export class VolumeTable extends Map<string, Volume> {
  /** Volume directory → volume name. */
  private readonly byPath = new Map<string, string>();
  /** Directory → how many volume directories lie strictly below it. */
  private readonly below = new Map<string, number>();

  constructor(entries: Iterable<readonly [string, Volume]> = []) {
    super(); // Map's constructor would call set() before the indexes above exist
    for (const [name, v] of entries) this.set(name, v);
  }

  /** Built on the first question, not at start-up: loading 100k volumes should not wait for it. */
  private indexed = false;

  /** Advances with every change to what List shows, so an encoded List reply can be reused until then. */
  version = 0;

  /** A volume changed in place (its state): what List shows may differ. */
  touch(): void {
    this.version++;
  }

  override set(name: string, v: Volume): this {
    this.version++;
    if (this.indexed) {
      const old = super.get(name);
      if (old) this.unindex(old);
      this.index(name, v);
    }
    return super.set(name, v);
  }

  override delete(name: string): boolean {
    this.version++;
    const old = super.get(name);
    if (old && this.indexed) this.unindex(old);
    return super.delete(name);
  }

  override clear(): void {
    this.version++;
    this.byPath.clear();
    this.below.clear();
    super.clear();
  }

  /** A volume whose directory is `dir`, lies above it or below it; undefined when none does. */
  overlapping(dir: string): Volume | undefined {
    if (!this.indexed) {
      for (const [name, v] of this) this.index(name, v);
      this.indexed = true;
    }
    for (const p of [dir, ...ancestors(dir)]) {
      const name = this.byPath.get(p);
      if (name !== undefined) return super.get(name);
    }
    if (!this.below.get(dir)) return undefined;
    // Rare (a refusal): find which one, for the message.
    for (const v of this.values()) if (v.path.startsWith(dir === '/' ? '/' : `${dir}/`)) return v;
    return undefined;
  }

  /** Volumes mostly share one parent (the data root): reuse its chain instead of rebuilding it per volume. */
  private lastParent = '';
  private lastChain: string[] = [];
  private ancestorsOf(p: string): string[] {
    const parent = path.dirname(p);
    if (parent !== this.lastParent) {
      this.lastParent = parent;
      this.lastChain = ancestors(p);
    }
    return this.lastChain;
  }

  private index(name: string, v: Volume): void {
    this.byPath.set(v.path, name);
    for (const dir of this.ancestorsOf(v.path)) this.below.set(dir, (this.below.get(dir) ?? 0) + 1);
  }

  private unindex(v: Volume): void {
    if (this.byPath.get(v.path) === v.name) this.byPath.delete(v.path);
    for (const dir of this.ancestorsOf(v.path)) {
      const n = (this.below.get(dir) ?? 0) - 1;
      if (n > 0) this.below.set(dir, n);
      else this.below.delete(dir);
    }
  }
}

/** Every directory strictly above `p`, nearest first, up to "/". */
function ancestors(p: string): string[] {
  const out: string[] = [];
  for (let cur = path.dirname(p); ; cur = path.dirname(cur)) {
    out.push(cur);
    if (cur === '/') return out;
  }
}
