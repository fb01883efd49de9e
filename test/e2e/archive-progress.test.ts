// Progress of export, import, clone and df under a real terminal: each command runs with stderr on a
// pty (`script` from util-linux makes one), and the terminal shows its progress line (bytes, rate, ETA
// where the total is known; for df, volumes done of all, bytes and files so far, ETA). With stderr not
// a terminal, nothing but the data is written: stderr of an export to stdout is empty, and stdout holds
// exactly the bytes an export to a file holds; df prints what one GET /df answers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AdminClient } from '../../src/commands/client';
import { humanBytes } from '../../src/commands/common';
import { BB_IMAGE, CLI_JS, DRIVER, RUN, e2eSuite, run, uniq } from './harness';

const s = e2eSuite();

const hostvolArgs = (args: string) => `${process.execPath} ${CLI_JS} ${args} --admin-socket ${s.hv.adminSocket}`;
/** Runs `hostvol ARGS` in a shell whose stdin, stdout and stderr are a pty; resolves with what the terminal showed. */
async function onTerminal(args: string): Promise<string> {
  const r = await run('script', ['-qfec', hostvolArgs(args), '/dev/null'], { env: { ...s.engine.env(), TERM: 'xterm' }, allowFail: true });
  if (r.code !== 0) throw new Error(`hostvol ${args} on a terminal failed (${r.code}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

let v: string;
beforeAll(async () => {
  v = uniq('pg');
  await s.docker(['volume', 'create', '-d', DRIVER, v]);
  await s.docker(['run', '--rm', ...RUN, '-v', `${v}:/d`, BB_IMAGE, 'sh', '-c', 'head -c 6000000 /dev/urandom > /d/big && echo small > /d/a']);
});

s.scenario('export to a file, and to a redirected stdout, shows bytes, rate and ETA on the terminal', async () => {
  const file = path.join(s.engine.base, `${v}.tar`);
  const shown = await onTerminal(`export ${v} ${file}`);
  expect(shown).toMatch(new RegExp(`export ${v} \\[[^\\]]*\\] \\d+% [\\d.]+MB of [\\d.]+MB [\\d.]+\\w?B/s ETA \\S+`));
  const piped = path.join(s.engine.base, `${v}-stdout.tar`);
  const shown2 = await onTerminal(`export ${v} - > ${piped}`);
  expect(shown2).toMatch(new RegExp(`export ${v} \\[[^\\]]*\\] 100% `));
  expect(fs.readFileSync(piped).equals(fs.readFileSync(file))).toBe(true);
}, 120_000);

s.scenario('import from a file shows bytes, rate and ETA; clone shows what it copies', async () => {
  const file = path.join(s.engine.base, `${v}-in.tar`);
  await run(process.execPath, [CLI_JS, 'export', v, file, '--admin-socket', s.hv.adminSocket], { env: s.engine.env() });
  const copy = `${v}-imp`;
  const shown = await onTerminal(`import ${copy} ${file} --create`);
  expect(shown).toMatch(new RegExp(`import ${copy} \\[[^\\]]*\\] 100% [\\d.]+MB of [\\d.]+MB [\\d.]+\\w?B/s ETA \\S+`));
  expect(shown).toMatch(new RegExp(`imported \\d+ entries .* into volume ${copy}`));
  const clone = `${v}-cl`;
  const cloned = await onTerminal(`clone ${v} ${clone}`);
  expect(cloned).toMatch(new RegExp(`clone ${v} to ${clone}: [\\d.]+MB in \\d+ files, \\d+s`));
  expect(cloned).toMatch(new RegExp(`cloned volume ${v} into ${clone}`));
  await s.docker(['volume', 'rm', copy, clone]);
}, 120_000);

s.scenario('with stderr not a terminal: nothing on stderr, and stdout is the archive an export to a file writes', async () => {
  const file = path.join(s.engine.base, `${v}-plain.tar`);
  const plain = await run(process.execPath, [CLI_JS, 'export', v, file, '--admin-socket', s.hv.adminSocket], { env: s.engine.env() });
  expect(plain).toMatchObject({ stdout: '', stderr: '' });
  const out = await run('/bin/sh', ['-c', `${hostvolArgs(`export ${v} -`)} 2>${file}.err | cat > ${file}.out`], { env: s.engine.env() });
  expect(out.stderr).toBe('');
  expect(fs.readFileSync(`${file}.err`, 'utf8')).toBe('');
  expect(fs.readFileSync(`${file}.out`).equals(fs.readFileSync(file))).toBe(true);
}, 120_000);

/** A GET of the admin API, asked of the socket directly rather than through the CLI. */
async function ask(route: string): Promise<any> {
  const c = new AdminClient(s.hv.adminSocket);
  try {
    return await c.json('GET', route);
  } finally {
    await c.close();
  }
}
/** What one GET /df answers: what `hostvol df` printed before it drew progress. */
const dfOnce = (names: string[] = []) => ask(`/df${names.length ? `?${names.map((n) => `name=${n}`).join('&')}` : ''}`);
/** Free space moves whenever anything writes to the disk; all else in df's answer stays put between two asks. */
const steady = (u: any) => ({ ...u, filesystems: u.filesystems.map(({ freeBytes, freeInodes, ...f }: any) => f) });

describe('df', () => {
  // Made in an order that is not their names' order: each file system must still be named after its
  // first volume by name, whether the daemon answered at once or the CLI added up batches.
  let names: string[];
  beforeAll(async () => {
    const p = uniq('df');
    names = [`${p}-c`, `${p}-a`, `${p}-b`];
    for (const n of names) await s.docker(['volume', 'create', '-d', DRIVER, n]);
    const fill = names.map((n, i) => `head -c ${(i + 1) * 300000} /dev/urandom > /${n}/f && echo x > /${n}/g`).join(' && ');
    await s.docker(['run', '--rm', ...RUN, ...names.flatMap((n) => ['-v', `${n}:/${n}`]), BB_IMAGE, 'sh', '-c', fill]);
  });

  s.scenario('on a terminal: volumes done of all, bytes and files so far, elapsed and ETA; the same sizes as one GET /df', async () => {
    const all: any[] = await ask('/volumes');
    const out = path.join(s.engine.base, 'df-tty.json');
    const shown = await onTerminal(`df --format json > ${out}`);
    expect(shown).toMatch(new RegExp(`df \\[[^\\]]*\\] 0/${all.length} volumes, 0B in 0 files`));
    expect(shown).toMatch(new RegExp(`df \\[[^\\]]*\\] ${all.length}/${all.length} volumes, [\\d.]+\\w?B in \\d+ files, \\d+s ETA \\S+`));
    const printed = steady(JSON.parse(fs.readFileSync(out, 'utf8')));
    const once = steady(await dfOnce());
    expect(printed.volumes).toEqual(once.volumes);
    expect(printed.total).toEqual(once.total);
    expect(shown).toContain(`${all.length}/${all.length} volumes, ${humanBytes(once.total.bytes)} in ${once.total.inodes} files`);
    // Per file system the same device, size, count of volumes and name: its first volume by name.
    const firstOn = (dev: number) => once.volumes.find((v: any) => v.dev === dev).path;
    expect(once.filesystems.map((f: any) => f.path)).toEqual(once.filesystems.map((f: any) => firstOn(f.dev)));
    expect(printed.filesystems).toEqual(once.filesystems);

    // Names given (one twice, as the daemon counts it once): only those, in the table as before.
    const some = await onTerminal(`df ${names.join(' ')} ${names[0]} > ${out}`);
    const three = await dfOnce(names);
    expect(some).toMatch(new RegExp(` 3/3 volumes, ${humanBytes(three.total.bytes)} in ${three.total.inodes} files, \\d+s ETA `));
    const total = ['TOTAL', humanBytes(three.total.bytes), humanBytes(three.total.apparentBytes), three.total.inodes].join(' +');
    expect(fs.readFileSync(out, 'utf8')).toMatch(new RegExp(`^${total}$`, 'm'));
  }, 120_000);

  s.scenario('with stderr not a terminal: nothing on stderr, and stdout is what one GET /df answers', async () => {
    const base = path.join(s.engine.base, 'df-piped');
    for (const args of [[], names]) {
      const r = await run('/bin/sh', ['-c', `${hostvolArgs(`df ${args.join(' ')} --format json`)} 2>${base}.err | cat > ${base}.out`], { env: s.engine.env() });
      expect(r.stderr).toBe('');
      expect(fs.readFileSync(`${base}.err`, 'utf8')).toBe('');
      expect(steady(JSON.parse(fs.readFileSync(`${base}.out`, 'utf8')))).toEqual(steady(await dfOnce(args)));
    }
  }, 120_000);

  s.scenario('a name that does not exist fails as one GET /df does, on a terminal too', async () => {
    const missing = `${names[1]}-gone`;
    const piped = await run(process.execPath, [CLI_JS, 'df', names[0], missing, '--admin-socket', s.hv.adminSocket], { env: s.engine.env(), allowFail: true });
    expect(piped.code).not.toBe(0);
    const why = piped.stderr.trim();
    expect(why).toContain(missing);
    const tty = await run('script', ['-qfec', hostvolArgs(`df ${names[0]} ${missing} ${names[2]}-gone`), '/dev/null'], { env: s.engine.env(), allowFail: true });
    expect(tty.code).not.toBe(0);
    expect(tty.stdout).toContain(why);
  }, 120_000);
});
