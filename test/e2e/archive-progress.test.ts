// Progress of export, import and clone under a real terminal: each command runs with stderr on a pty
// (`script` from util-linux makes one), and the terminal shows its progress line (bytes, rate, ETA
// where the total is known). With stderr not a terminal, nothing but the data is written: stderr of
// an export to stdout is empty, and stdout holds exactly the bytes an export to a file holds.
import * as fs from 'node:fs';
import * as path from 'node:path';
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
