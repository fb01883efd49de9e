// What the slow-or-failing-disk group (disk.test.ts) checks after a failure, and how it fills a disk.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isErr, isOk } from './client';
import type { Invariants } from './figures';
import type { Serve } from './serve';

/** Fills the file system holding `dir` until ENOSPC; returns the filler file. */
export function fill(dir: string): string {
  const f = path.join(dir, 'filler');
  const fd = fs.openSync(f, 'a');
  try {
    for (const size of [1 << 20, 1 << 16, 1 << 12, 512, 1]) {
      const buf = Buffer.alloc(size, 0x66);
      try {
        for (;;) fs.writeSync(fd, buf);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return f;
}

/** What must hold for volume `name` after a Create of it failed: no directory, no record, a clear Err. */
export async function failedCleanly(inv: Invariants, s: Serve, name: string, dir: string, err: string, why: RegExp): Promise<void> {
  inv.check(err.includes(`"${name}"`) && why.test(err), () => `Create ${name}: the Err is not clear: ${err}`);
  inv.check(!fs.existsSync(dir), `Create ${name} failed but left ${dir}`);
  inv.check(isErr(await s.client.get(name)), `Create ${name} failed but Get finds it`);
  inv.check(!(await s.client.names()).includes(name), `Create ${name} failed but List shows it`);
}

/** Get and List still answer for the volumes that exist. */
export async function stillAnswering(inv: Invariants, s: Serve, names: string[], when: string): Promise<void> {
  for (const n of names) {
    const g = await s.client.get(n);
    inv.check(isOk(g) && g.json.Volume.Name === n, () => `${when}: Get ${n} failed: ${g.text}`);
  }
  const l = await s.client.list();
  const listed = isOk(l) ? (l.json.Volumes as { Name: string }[]).map((v) => v.Name) : [];
  inv.check(names.every((n) => listed.includes(n)), () => `${when}: List is missing volumes: ${l.text}`);
}
