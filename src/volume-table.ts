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

  override set(name: string, v: Volume): this {
    const old = super.get(name);
    if (old) this.unindex(old);
    this.byPath.set(v.path, name);
    for (const dir of ancestors(v.path)) this.below.set(dir, (this.below.get(dir) ?? 0) + 1);
    return super.set(name, v);
  }

  override delete(name: string): boolean {
    const old = super.get(name);
    if (old) this.unindex(old);
    return super.delete(name);
  }

  override clear(): void {
    this.byPath.clear();
    this.below.clear();
    super.clear();
  }

  /** A volume whose directory is `dir`, lies above it or below it; undefined when none does. */
  overlapping(dir: string): Volume | undefined {
    for (const p of [dir, ...ancestors(dir)]) {
      const name = this.byPath.get(p);
      if (name !== undefined) return super.get(name);
    }
    if (!this.below.get(dir)) return undefined;
    // Rare (a refusal): find which one, for the message.
    for (const v of this.values()) if (v.path.startsWith(dir === '/' ? '/' : `${dir}/`)) return v;
    return undefined;
  }

  private unindex(v: Volume): void {
    if (this.byPath.get(v.path) === v.name) this.byPath.delete(v.path);
    for (const dir of ancestors(v.path)) {
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
