// Issue 5, group 4: path escapes. Symlinks planted inside volumes, `path` through symlinks and `..`,
// a data root reached through a symlink, files where directories belong, bind mounts inside a volume,
// a volume directory swapped for a symlink after Create. Each attempt must leave everything outside the
// data root and the allowed paths untouched (snapshot) and be refused with a clear Err where it should.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { isErr, isOk, type Reply } from './lib/client';
import { Invariants, recordFigures } from './lib/figures';
import { Sandbox, diffSnapshots, mountTable, inside, plantDecoys, snapshot, } from './lib/sandbox';
import { Serve, requireBuild, type ServeConfig } from './lib/serve';

let sb: Sandbox;
let cfg: ServeConfig;
let serve: Serve;
let d: { realRoot: string; rootLink: string; allow: string; outside: string; state: string };
const inv = new Invariants();
const started = Date.now();
let escapes = 0;

beforeAll(async () => {
  requireBuild();
  sb = new Sandbox('escapes');
  d = { realRoot: sb.dir('real-root'), rootLink: sb.path('root-link'), allow: sb.dir('allow'), outside: sb.dir('outside'), state: sb.path('state') };
  plantDecoys(d.outside);
  // The data root is given through a symlink: it must confine by where it really is.
  fs.symlinkSync(d.realRoot, d.rootLink);
  cfg = {
    socket: sb.path('hostvol.sock'),
    dataRoot: d.rootLink,
    stateDir: d.state,
    allowPaths: [d.allow],
    bootIdFile: sb.bootId(),
    logFile: sb.path('hostvol.log'),
  };
  serve = await Serve.start(cfg);
}, 30_000);

/** A test whose violations, and any change to the outside tree, fail it. */
function escapeTest(name: string, fn: () => Promise<void>): void {
  test(name, async () => {
    const first = inv.violations.length;
    const before = snapshot(d.outside);
    await fn();
    const diff = diffSnapshots(before, snapshot(d.outside));
    inv.check(diff.length === 0, () => `outside changed:\n${diff.join('\n')}`);
    const mine = inv.violations.slice(first);
    if (mine.length) throw new Error(`${mine.length} invariant violation(s):\n${mine.join('\n')}`);
  }, 60_000);
}

afterAll(async () => {
  await serve?.kill();
  recordFigures('escapes', {
    title: '4. path escapes',
    durationMs: Date.now() - started,
    checks: inv.checks,
    violations: inv.violations.length,
    escapes,
    notes: `${escapes} escape attempts against a data root reached through a symlink`,
  });
  sb?.cleanup();
}, 30_000);

const c = () => serve.client;

/** An attempt that must be refused with an Err matching `why` that names the volume. */
async function refused(what: string, r: Promise<Reply>, name: string, why: RegExp): Promise<void> {
  escapes++;
  const reply = await r;
  inv.check(isErr(reply) && why.test(reply.json.Err) && reply.json.Err.includes(`"${name}"`),
    () => `${what}: expected a clear Err (${why}) naming "${name}", got ${reply.text.slice(0, 400)}`);
}

async function created(name: string, opts: Record<string, string> | null): Promise<any> {
  const r = await c().create(name, opts);
  if (!inv.check(isOk(r), () => `Create ${name} ${JSON.stringify(opts)}: ${r.text}`)) return undefined;
  return (await c().ok('/VolumeDriver.Get', { Name: name })).Volume;
}

escapeTest('a symlink planted inside a volume pointing outside, then Remove with onremove=delete → the target is untouched', async () => {
  for (const [name, opts] of [
    ['planted', { onremove: 'delete' }],
    ['planted-default', null], // made by hostvol: deleted by default
    ['planted-path', { path: path.join(d.allow, 'planted-path'), onremove: 'delete' }],
  ] as const) {
    const v = await created(name, opts as Record<string, string> | null);
    if (!v) continue;
    const dir = v.Status.path as string;
    fs.symlinkSync(d.outside, path.join(dir, 'to-outside-dir'));
    fs.symlinkSync(path.join(d.outside, 'etc', 'passwd'), path.join(dir, 'to-outside-file'));
    fs.mkdirSync(path.join(dir, 'sub', 'deeper'), { recursive: true });
    fs.symlinkSync(path.join(d.outside, 'etc'), path.join(dir, 'sub', 'deeper', 'etc'));
    fs.symlinkSync('../../../outside', path.join(dir, 'sub', 'relative'));
    fs.linkSync(path.join(d.outside, 'x', 'keep'), path.join(dir, 'hardlink'));
    escapes++;
    const r = await c().remove(name);
    inv.check(isOk(r), () => `Remove ${name}: ${r.text}`);
    inv.check(!fs.existsSync(dir), `${name}: ${dir} was not deleted`);
  }
});

escapeTest('a bind mount of an outside directory inside a volume, then Remove with onremove=delete → refused, outside untouched', async () => {
  const v = await created('bound', { onremove: 'delete' });
  const target = path.join(v.Status.path, 'inner');
  fs.mkdirSync(target);
  // Same file system as the volume: st_dev does not tell them apart, only the mount table does.
  execFileSync('mount', ['--bind', d.outside, target]);
  try {
    await refused('Remove with an outside bind mount inside', c().remove('bound'), 'bound', /mounted inside|another file system/);
    inv.check(isOk(await c().get('bound')), 'bound: the volume is gone after a refused Remove');
  } finally {
    execFileSync('umount', [target]);
  }
  inv.check(isOk(await c().remove('bound')), 'bound: Remove after unmounting failed');
});

escapeTest('path through a symlink leading outside the allowed paths → refused; one staying inside → its real location', async () => {
  fs.symlinkSync(d.outside, path.join(d.allow, 'link-out'));
  fs.symlinkSync('../outside/x', path.join(d.allow, 'rel-out'));
  fs.symlinkSync(path.join(d.outside, 'missing'), path.join(d.allow, 'dangling-out'));
  fs.mkdirSync(path.join(d.allow, 'inner'));
  fs.symlinkSync(path.join(d.allow, 'inner'), path.join(d.allow, 'link-in'));
  fs.symlinkSync('/', path.join(d.allow, 'link-root'));
  for (const [i, p] of ['link-out', 'link-out/x', 'link-out/new/dir', 'rel-out', 'rel-out/y', 'link-root/etc', 'link-root',
    'dangling-out', 'dangling-out/x'].entries()) {
    await refused(`path=allow/${p}`, c().create(`sym${i}`, { path: path.join(d.allow, p) }), `sym${i}`, /outside the allowed paths|symbolic link/);
    await refused(`mountpoint=allow/${p} onremove=delete`, c().create(`symd${i}`, { mountpoint: path.join(d.allow, p), onremove: 'delete' }), `symd${i}`, /outside the allowed paths|symbolic link/);
  }
  inv.check(!fs.existsSync(path.join(d.outside, 'missing')), 'a Create through a dangling symlink made its target outside');
  inv.check(!fs.existsSync(path.join(d.outside, 'new')), 'a Create through a symlink made a directory outside');
  const v = await created('sym-in', { path: path.join(d.allow, 'link-in', 'data') });
  inv.check(v?.Status.path === path.join(d.allow, 'inner', 'data'), () => `sym-in recorded ${v?.Status.path}, not its real location`);
});

escapeTest('path with ".." segments → resolved and judged by its real location', async () => {
  fs.mkdirSync(path.join(d.allow, 'deep', 'er'), { recursive: true });
  fs.symlinkSync(path.join(d.outside, 'x'), path.join(d.allow, 'deep', 'hop'));
  const cases: [string, string | null][] = [
    [`${d.allow}/../outside`, null],
    [`${d.allow}/deep/../../outside/x`, null],
    [`${d.allow}/../${path.basename(d.allow)}/../outside`, null],
    // The kernel resolves the symlink first and applies ".." to its target: outside/x/.. = outside.
    [`${d.allow}/deep/hop/../etc`, null],
    [`${d.allow}/${'../'.repeat(20)}etc`, null],
    [`${d.allow}/deep/er/../../dd`, path.join(d.allow, 'dd')],
    [`${d.allow}/./deep/./er/../er2`, path.join(d.allow, 'deep', 'er2')],
  ];
  for (const [i, [p, real]] of cases.entries()) {
    const name = `dots${i}`;
    if (real === null) {
      await refused(`path=${p}`, c().create(name, { path: p, onremove: 'delete' }), name, /outside the allowed paths/);
    } else {
      escapes++;
      const v = await created(name, { path: p });
      inv.check(v?.Status.path === real, () => `${name}: ${p} recorded as ${v?.Status.path}, expected ${real}`);
    }
  }
  inv.check(!fs.existsSync(path.join(d.outside, 'etc', 'etc')) && !fs.existsSync(path.join(d.outside, 'x', 'etc')), 'a ".." path made something outside');
});

escapeTest('a data root reached through a symlink still confines, also after the symlink is changed', async () => {
  const v = await created('in-root', null);
  inv.check(v?.Status.path === path.join(d.realRoot, 'in-root'), () => `in-root lives at ${v?.Status.path}, expected under ${d.realRoot}`);
  // Pointing the data-root symlink elsewhere must not move where new volumes go.
  fs.unlinkSync(d.rootLink);
  fs.symlinkSync(d.outside, d.rootLink);
  try {
    escapes++;
    const w = await created('after-swap', { onremove: 'delete' });
    inv.check(w?.Status.path === path.join(d.realRoot, 'after-swap'), () => `after-swap lives at ${w?.Status.path}`);
    inv.check(!fs.existsSync(path.join(d.outside, 'after-swap')), 'after-swap was made outside');
    await refused('path=<data-root symlink>/x after the swap', c().create('via-link', { path: path.join(d.rootLink, 'x') }), 'via-link', /outside the allowed paths/);
    escapes++;
    inv.check(isOk(await c().remove('after-swap')), 'Remove after-swap');
    inv.check(fs.existsSync(path.join(d.outside, 'x', 'keep')), 'outside data gone after the swap');
  } finally {
    fs.unlinkSync(d.rootLink);
    fs.symlinkSync(d.realRoot, d.rootLink);
  }
});

escapeTest('a file (not a directory) at the volume path → clear Err, the file untouched', async () => {
  fs.writeFileSync(path.join(d.allow, 'a-file'), 'not a directory\n');
  fs.writeFileSync(path.join(d.realRoot, 'filevol'), 'not a directory\n');
  await refused('path=<file>', c().create('fileA', { path: path.join(d.allow, 'a-file') }), 'fileA', /not a directory/);
  await refused('path=<file>/sub', c().create('fileB', { path: path.join(d.allow, 'a-file', 'sub') }), 'fileB', /not a directory/);
  await refused('name whose directory is a file', c().create('filevol', null), 'filevol', /not a directory/);
  fs.symlinkSync(path.join(d.outside, 'etc', 'passwd'), path.join(d.allow, 'link-file'));
  await refused('path=<symlink to a file outside>', c().create('fileC', { path: path.join(d.allow, 'link-file'), onremove: 'delete' }), 'fileC', /not a directory|outside the allowed paths/);
  inv.check(fs.readFileSync(path.join(d.allow, 'a-file'), 'utf8') === 'not a directory\n', 'a-file changed');
  inv.check(fs.readFileSync(path.join(d.realRoot, 'filevol'), 'utf8') === 'not a directory\n', 'filevol changed');
  // The volume directory replaced by a file after Create: Mount must fail clearly, not hand out a file.
  const v = await created('became-file', null);
  fs.rmdirSync(v.Status.path);
  fs.writeFileSync(v.Status.path, 'x');
  await refused('Mount of a volume whose directory became a file', c().mount('became-file', 'm1'), 'became-file', /no longer exists|not a directory/);
});

escapeTest('a volume directory swapped for a symlink after Create → Mount and Remove never reach outside', async () => {
  for (const [name, ro] of [['swapped', false], ['swapped-ro', true]] as const) {
    const v = await created(name, { path: path.join(d.allow, name), onremove: 'delete', ...(ro ? { ro: '' } : {}) });
    if (!v) continue;
    fs.rmSync(v.Status.path, { recursive: true });
    fs.symlinkSync(d.outside, v.Status.path);
    await refused(`Mount of ${name}`, c().mount(name, 'm1'), name, /symbolic link/);
    inv.check(!mountTable().some((m) => inside(m.target, d.state)), `${name}: a bind mount of the outside was made`);
    escapes++;
    const r = await c().remove(name);
    inv.check(isOk(r) || isErr(r), `${name}: Remove reply malformed`);
    inv.check(fs.lstatSync(v.Status.path, { throwIfNoEntry: false })?.isSymbolicLink() !== false, `${name}: the planted symlink was followed`);
    fs.rmSync(v.Status.path, { force: true });
  }
});

escapeTest('names and option values that try to leave the data root → refused before touching the disk', async () => {
  const names = ['../outside', '../../etc', '/etc', 'a/../../outside', '..', '.', 'x\0y', 'outside/../..', `..${path.sep}x`];
  for (const n of names) {
    escapes++;
    const r = await c().create(n, { onremove: 'delete' });
    inv.check(isErr(r) && /invalid volume name|volume name is empty/.test(r.json.Err), () => `name ${JSON.stringify(n)}: ${r.text}`);
  }
  for (const p of ['relative/dir', './x', '', `${d.allow}/a\0b`, `${d.allow}/\ud800`, `${d.allow}/${'n'.repeat(300)}`]) {
    await refused(`path=${JSON.stringify(p.slice(0, 40))}`, c().create('badpath', { path: p }), 'badpath', /option path/);
  }
  // hostvol's own directories are never volumes, even when an allowed path contains them.
  const wide = { ...cfg, socket: sb.path('wide.sock'), stateDir: sb.path('wide-state'), dataRoot: sb.path('wide-data'), allowPaths: [sb.root], logFile: sb.path('wide.log') };
  const s = await Serve.start(wide);
  try {
    for (const [name, p] of [['st', wide.stateDir], ['stm', path.join(wide.stateDir, 'mounts', 'x')], ['dr', wide.dataRoot], ['sbroot', sb.root]] as const) {
      escapes++;
      const r = await s.client.create(name, { path: p, onremove: 'delete' });
      inv.check(isErr(r) && r.json.Err.includes(`"${name}"`), () => `path=${p}: ${r.text}`);
    }
  } finally {
    await s.kill();
  }
});
