// Mount leases as a model counts them: volume → Mount ID → count, with no empty entries left behind,
// so that comparing the model with a store's rows needs no clean-up (crash and power-cut groups).
export class LeaseCounts extends Map<string, Map<string, number>> {
  count(name: string, id: string): number {
    return this.get(name)?.get(id) ?? 0;
  }

  setCount(name: string, id: string, c: number): void {
    const m = this.get(name) ?? new Map<string, number>();
    if (c > 0) m.set(id, c);
    else m.delete(id);
    if (m.size) this.set(name, m);
    else this.delete(name);
  }
}
