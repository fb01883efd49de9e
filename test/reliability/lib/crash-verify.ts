// The crash-consistency group's check after every restart (crash.test.ts): the request that was in
// flight at the kill is settled from what the restarted driver reports, then every invariant of the
// model is checked against the driver, the directories and the mount table.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isOk } from './client';
import { CrashModel, type Op } from './crash-model';
import { inside, mountTable } from './sandbox';
import type { Serve } from './serve';

export async function verifyAfterRestart(
  model: CrashModel, serve: Serve, op: Op | undefined, mustExist: boolean | undefined, at: string, sandboxRoot: string, allowRoot: string,
): Promise<void> {
  const { inv, vols, leases, foreign, dirs } = model;
  const c = serve.client;
  const names = await c.names();
  if (mustExist !== undefined) {
    const state = mustExist ? "'ready'" : "absent, 'creating' or 'removing'";
    inv.check(names.includes(op!.name) === mustExist, () => `${at}: ${op!.kind} ${op!.name} in flight, record ${state} at the kill, but List ${mustExist ? 'lacks' : 'shows'} it`);
  }
  if (op?.kind === 'create' && !vols.has(op.name) && names.includes(op.name)) {
    model.landedEitherWay++;
    model.created(op.name, op.flavor, op.existed, op.made);
  }
  if (op?.kind === 'remove' && vols.has(op.name) && !names.includes(op.name)) {
    model.landedEitherWay++;
    model.removed(op.name);
  }

  inv.check(JSON.stringify(names) === JSON.stringify([...vols.keys()].sort()), () => `${at}: List ${names} / acknowledged ${[...vols.keys()].sort()}`);
  const listed = new Map(((await c.ok('/VolumeDriver.List', {})).Volumes as { Name: string; Mountpoint: string }[]).map((x) => [x.Name, x.Mountpoint]));
  for (const [name, v] of vols) {
    const r = await c.get(name);
    if (!inv.check(isOk(r), () => `${at}: Get ${name}: ${r.text}`)) continue;
    const st = r.json.Volume.Status;
    // A host service shows the data directory in Get and List; only Mount answers the bind.
    inv.check(r.json.Volume.Mountpoint === v.path && listed.get(name) === v.path,
      () => `${at}: ${name} shown at ${r.json.Volume.Mountpoint} (Get) / ${listed.get(name)} (List), expected ${v.path}`);
    inv.check(st.path === v.path, () => `${at}: ${name} path ${st.path}, expected ${v.path}`);
    inv.check(st.onRemove === v.onRemove, () => `${at}: ${name} onRemove ${st.onRemove}, expected ${v.onRemove}`);
    inv.check(st.mounts === (leases.get(name)?.size ?? 0), () => `${at}: ${name} has ${st.mounts} mounts, acknowledged ${leases.get(name)?.size ?? 0}`);
    let data = '';
    try {
      data = fs.readFileSync(path.join(v.path, `.marker-${name}`), 'utf8');
    } catch {
      // reported below
    }
    inv.check(data === CrashModel.marker(name), () => `${at}: data of acknowledged volume ${name} is gone from ${v.path}`);
  }
  for (const d of foreign) inv.check(fs.existsSync(d), () => `${at}: directory ${d} (not hostvol's to delete) is gone`);

  // No directory made by hostvol without a record: every directory is a volume, an ancestor of one,
  // or foreign; and no trash of a Remove is left, since start-up finishes every 'removing' record.
  // allow/pre is the test's own, made to hold the 'pre' directories: walked into, never flagged, even
  // when no volume or foreign directory is left in it (seed 904682442, after a pre-delete Remove), and
  // a Remove that deletes its volume's directory must leave it.
  inv.check(fs.existsSync(dirs.allowPre), () => `${at}: ${dirs.allowPre}, the test's own directory, is gone`);
  const known = [...[...vols.values()].map((v) => v.path), ...foreign];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (!inv.check(!e.name.startsWith('.hostvol-trash-'), () => `${at}: trash ${p} of a Remove is left`)) continue;
      if (!e.isDirectory()) continue;
      if (known.includes(p)) continue;
      if (model.sharedMade.has(p) && fs.readdirSync(p).length === 0) continue;
      if (p !== dirs.allowPre && !inv.check(known.some((k) => inside(k, p)), () => `${at}: directory ${p} exists without a volume record`)) continue;
      walk(p);
    }
  };
  walk(dirs.data);
  walk(allowRoot);

  // Bind mounts: exactly one per volume with leases, of its own directory, read-only exactly for ro
  // volumes; nothing else in the sandbox.
  const wanted = [...vols].filter(([n]) => leases.has(n)).map(([n]) => path.join(dirs.mounts, n)).sort();
  const mounts = mountTable().filter((m) => inside(m.target, sandboxRoot));
  inv.check(JSON.stringify(mounts.map((m) => m.target).sort()) === JSON.stringify(wanted),
    () => `${at}: bind mounts ${mounts.map((m) => m.target)} / wanted ${wanted}`);
  for (const m of mounts) {
    const v = vols.get(path.basename(m.target));
    if (!v) continue;
    inv.check(m.root === v.path, () => `${at}: bind mount ${m.target} shows ${m.root}, not the directory ${v.path}`);
    inv.check(m.options.split(',').includes(v.ro ? 'ro' : 'rw'), () => `${at}: bind mount ${m.target} is ${m.options}, volume ro=${v.ro}`);
  }
  // Nor anywhere else on the host: a bind of a sandbox directory outside the state dir is a leak.
  const elsewhere = mountTable().filter((m) => inside(m.root, sandboxRoot) && !inside(m.target, sandboxRoot) && m.fstype !== 'tmpfs');
  inv.check(elsewhere.length === 0, () => `${at}: bind mounts of volume directories outside the sandbox: ${elsewhere.map((m) => `${m.root} on ${m.target}`)}`);
  const leftovers = fs.existsSync(dirs.mounts) ? fs.readdirSync(dirs.mounts).map((e) => path.join(dirs.mounts, e)).sort() : [];
  inv.check(JSON.stringify(leftovers) === JSON.stringify(wanted), () => `${at}: mount directories ${leftovers} / wanted ${wanted}`);
}
