// The checks of the power-cut group: what the durable store holds right after the cut (lease counts
// are exact there, and settle the Mounts and Unmounts in flight), and, after restart and recovery,
// everything a client and an operator can see: List, Get, the directories with their owner, mode and
// the files the test synced, no trash or half-made directory left, and the bind mounts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isOk, type Client } from './client';
import type { Invariants } from './figures';
import { sortedJson, shownOptions, type PowerModel } from './powercut-model';
import type { Op } from './powercut-workload';
import { inside, mountTable } from './sandbox';
import type { StoreCopy } from './store';

export interface Settled {
  landed: number;
  notLanded: number;
}

const TRASH = '.hostvol-trash-';
/** Marks the violations that depend on lease counts (see `sweptLeases` in powercut.test.ts). */
export const LEASES = '[leases]';

/** Right after the cut, before any restart: the store as the power left it. */
export function checkDurableStore(inv: Invariants, model: PowerModel, copy: StoreCopy, inflight: Op[], settled: Settled, at: string): void {
  inv.check(copy.integrity === 'ok', () => `${at}: store integrity ${copy.integrity}`);
  const pending = new Set(inflight.filter((o) => o.kind === 'create' || o.kind === 'remove').map((o) => o.name));
  for (const op of inflight) {
    if ((op.kind !== 'mount' && op.kind !== 'unmount') || !model.vols.has(op.name)) continue;
    const before = model.leases.count(op.name, op.id);
    const stored = copy.leases.find((l) => l.volume === op.name && l.id === op.id)?.count ?? 0;
    const after = op.kind === 'mount' ? before + 1 : Math.max(0, before - 1);
    if (inv.check(stored === before || stored === after, `${at}: ${LEASES} ${op.kind} ${op.name}/${op.id} in flight: stored count ${stored}, acknowledged ${before}`)) {
      if (stored !== before) settled.landed++;
      else if (before !== after) settled.notLanded++;
      model.leases.setCount(op.name, op.id, stored);
    }
  }
  for (const name of pending) {
    // A Remove in flight of a volume with leases drops them first (no container has it mounted): the
    // volume may stay without them if the cut came after, but dropping only some is half a Remove.
    const held = model.leaseList().filter((l) => l.startsWith(`${name}/`));
    const stored = copy.leases.filter((l) => l.volume === name).map((l) => `${l.volume}/${l.id}=${l.count}`).sort();
    const row = copy.volumes.find((r) => r.name === name);
    // Once 'removing' is durable the Remove has landed: recovery finishes it, leases and all.
    if (!model.vols.has(name) || held.length === 0 || row?.state !== 'ready') continue;
    inv.check(stored.length === 0 || sortedJson(stored) === sortedJson(held), () =>
      `${at}: ${LEASES} Remove of ${name} in flight dropped only some of its leases: durable ${stored.join(' ')} / acknowledged ${held.join(' ')}`);
    model.leases.delete(name);
    for (const l of copy.leases) if (l.volume === name) model.leases.setCount(name, l.id, l.count);
  }
  const got = copy.leases.filter((l) => !pending.has(l.volume)).map((l) => `${l.volume}/${l.id}=${l.count}`).sort();
  const want = model.leaseList().filter((l) => !pending.has(l.slice(0, l.indexOf('/'))));
  inv.check(sortedJson(got) === sortedJson(want), () => `${at}: ${LEASES} durable lease counts ${got.join(' ')} / acknowledged ${want.join(' ')}`);
  for (const name of model.vols.keys()) {
    if (!pending.has(name)) inv.check(copy.volumes.some((r) => r.name === name && r.state === 'ready'), `${at}: acknowledged volume ${name} has no ready record in the durable store`);
  }
  for (const row of copy.volumes) {
    if (!pending.has(row.name)) inv.check(model.vols.has(row.name), `${at}: durable store has a record of ${row.name} (${row.state}), which is not an acknowledged volume`);
  }
}

/** After restart: the Creates and Removes in flight landed or not, as a whole; then every invariant. */
export async function checkRecovered(inv: Invariants, model: PowerModel, client: Client, inflight: Op[], settled: Settled, at: string): Promise<void> {
  const names = await client.names();
  for (const op of inflight) {
    if (op.kind === 'create' && !model.vols.has(op.name)) {
      if (names.includes(op.name)) {
        settled.landed++;
        model.created(op.name, op.ask, op.existed);
      } else settled.notLanded++;
    }
    if (op.kind === 'remove' && model.vols.has(op.name)) {
      if (names.includes(op.name)) settled.notLanded++;
      else {
        settled.landed++;
        model.removed(op.name);
      }
    }
  }
  const want = [...model.vols.keys()].sort();
  inv.check(sortedJson(names) === sortedJson(want), () => `${at}: List ${names} / acknowledged ${want}`);
  for (const [name, v] of model.vols) {
    const r = await client.get(name);
    if (!inv.check(isOk(r), () => `${at}: Get ${name}: ${r.text}`)) continue;
    const st = r.json.Volume.Status;
    inv.check(sortedJson(st.options) === sortedJson(shownOptions(v.ask.canon)), () => `${at}: ${name} options ${JSON.stringify(st.options)}, asked ${JSON.stringify(v.ask.opts)}`);
    inv.check(st.path === v.ask.dir && r.json.Volume.Mountpoint === v.ask.dir, () => `${at}: ${name} path ${st.path} / mountpoint ${r.json.Volume.Mountpoint}, expected ${v.ask.dir}`);
    inv.check(st.createdBy === v.createdBy && st.onRemove === v.onRemove, () => `${at}: ${name} createdBy ${st.createdBy} onRemove ${st.onRemove}, expected ${v.createdBy} ${v.onRemove}`);
    const mounts = model.leases.get(name)?.size ?? 0;
    inv.check(st.mounts === mounts, () => `${at}: ${LEASES} ${name} has ${st.mounts} mounts, acknowledged ${mounts} (${model.leaseList().join(' ')})`);
    checkDirectory(inv, name, v.ask.dir, v.files, at);
    const c = v.ask.canon;
    const ownerMode = (dir: string) => {
      const s = fs.statSync(dir);
      return { uid: s.uid, gid: s.gid, mode: s.mode & 0o7777 };
    };
    if (!fs.existsSync(v.ask.dir)) continue;
    const got = ownerMode(v.ask.dir);
    const made = v.createdBy === 'hostvol';
    const wantOwner = { uid: c.uid ?? (made ? 0 : got.uid), gid: c.gid ?? (made ? 0 : got.gid), mode: c.mode ?? (made ? 0o755 : got.mode) };
    inv.check(sortedJson(got) === sortedJson(wantOwner), () => `${at}: ${name} directory ${v.ask.dir} is ${JSON.stringify(got)}, asked ${JSON.stringify(wantOwner)}`);
  }
  for (const [dir, files] of model.kept) checkDirectory(inv, `kept data at ${dir}`, dir, files, at);
  walk(inv, model, model.roots.data, at);
  walk(inv, model, model.roots.allow, at);
  checkMounts(inv, model, at);
}

/** A directory that must exist and hold every file the test synced into it, unchanged. */
function checkDirectory(inv: Invariants, what: string, dir: string, files: Map<string, string>, at: string): void {
  if (!inv.check(fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory() === true, () => `${at}: ${what}: directory ${dir} is gone`)) return;
  for (const [file, content] of files) {
    let got: string | undefined;
    try {
      got = fs.readFileSync(path.join(dir, file), 'utf8');
    } catch {
      // reported below
    }
    inv.check(got === content, () => `${at}: ${what}: synced file ${file} ${got === undefined ? 'is gone' : `has ${got.length} bytes, not the ${content.length} written`}`);
  }
}

/** No trash left anywhere, and no directory (or file) outside a volume that nobody accounts for. */
function walk(inv: Invariants, model: PowerModel, dir: string, at: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    inv.check(!e.name.startsWith(TRASH), () => `${at}: trash ${p} left behind (a delete that was not finished)`);
    if (e.name.startsWith(TRASH)) continue;
    const role = e.isDirectory() ? model.allowedDir(p) : undefined;
    if (!inv.check(role !== undefined, () => `${at}: ${e.isDirectory() ? 'directory' : 'file'} ${p} belongs to no volume, kept data or directory that was there before`)) continue;
    if (role === 'parent') walk(inv, model, p, at);
  }
}

/** One bind mount per volume with leases, read-only for ro volumes, showing its data; nothing else. */
function checkMounts(inv: Invariants, model: PowerModel, at: string): void {
  const held = [...model.leases.keys()].filter((n) => model.vols.has(n));
  const wanted = held.map((n) => path.join(model.roots.mounts, n)).sort();
  const table = mountTable().filter((m) => inside(m.target, model.roots.mounts) && m.target !== model.roots.mounts);
  const targets = table.map((m) => m.target).sort();
  inv.check(sortedJson(targets) === sortedJson(wanted), () => `${at}: ${LEASES} bind mounts ${targets} / volumes with leases ${wanted}`);
  for (const name of held) {
    const target = path.join(model.roots.mounts, name);
    const m = table.find((t) => t.target === target);
    if (!m) continue;
    const v = model.vols.get(name)!;
    inv.check(m.options.split(',').includes('ro') === v.ask.canon.readOnly, () => `${at}: bind of ${name} has options ${m.options}, volume readOnly=${v.ask.canon.readOnly}`);
    let seen: string[] = [];
    try {
      seen = fs.readdirSync(target);
    } catch (err) {
      inv.check(false, `${at}: mountpoint ${target} of ${name} is not readable: ${(err as Error).message}`);
      continue;
    }
    const missing = [...v.files.keys()].filter((f) => !seen.includes(f));
    inv.check(missing.length === 0, () => `${at}: ${LEASES} mountpoint ${target} of ${name} does not show synced files ${missing}`);
  }
  const dirs = fs.existsSync(model.roots.mounts) ? fs.readdirSync(model.roots.mounts).map((e) => path.join(model.roots.mounts, e)).sort() : [];
  inv.check(sortedJson(dirs) === sortedJson(wanted), () => `${at}: ${LEASES} mount directories ${dirs} / wanted ${wanted}`);
}
