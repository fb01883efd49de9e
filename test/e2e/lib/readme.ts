// The README's install, upgrade and uninstall command blocks, run verbatim against a private engine.
// Each block follows a `<!-- e2e: NAME -->` line. The only substitutions are the placeholders the README
// itself tells the reader to replace (`<registry>`, `<version>`, `<state-dir>`, `<paths-dir>`).
//
// A block runs in bash (-e, pipefail) inside the engine's mount namespace, from the checkout, with
// DOCKER_HOST pointing at the private dockerd. Host directories a block names (/var/lib/hostvol,
// /srv/hostvol) are created there on a private overlay of /var/lib and a tmpfs on /srv (hostDirs()), so
// the machine running the tests is never written to; dockerd, which runs in that namespace, binds them.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Engine } from './engine';
import { REPO } from './hostvol';
import { isAlive, run, terminate, waitFor, type RunResult } from './proc';

export const README = path.join(REPO, 'README.md');
const MARKER = /^<!-- e2e: ([a-z-]+) -->$/;

/** Every marked block of the README, by name. */
export function readmeBlocks(): Map<string, string> {
  const lines = fs.readFileSync(README, 'utf8').split('\n');
  const blocks = new Map<string, string>();
  for (let i = 0; i < lines.length; i++) {
    const m = MARKER.exec(lines[i]);
    if (!m) continue;
    if (lines[i + 1] !== '```bash') throw new Error(`README.md:${i + 1}: "${lines[i]}" must be followed by a \`\`\`bash block`);
    const end = lines.indexOf('```', i + 2);
    if (end < 0) throw new Error(`README.md:${i + 2}: unterminated block ${m[1]}`);
    if (blocks.has(m[1])) throw new Error(`README.md: block ${m[1]} is marked twice`);
    blocks.set(m[1], lines.slice(i + 2, end).join('\n'));
  }
  return blocks;
}

/** The block with every `<placeholder>` replaced; fails if the block names one not given (or vice versa). */
export function readmeBlock(name: string, values: Record<string, string> = {}): string {
  const block = readmeBlocks().get(name);
  if (block === undefined) throw new Error(`README.md has no block marked <!-- e2e: ${name} -->`);
  const named = new Set([...block.matchAll(/<([a-z-]+)>/g)].map((m) => m[1]));
  const given = Object.keys(values);
  if ([...named].sort().join() !== given.sort().join()) {
    throw new Error(`README block ${name} names <${[...named].join('>, <')}>, the test gives ${given.join(', ') || 'none'}`);
  }
  return block.replace(/<([a-z-]+)>/g, (_, k: string) => values[k]);
}

/**
 * Runs a README block; resolves with its output, throws with it when a command fails. With a worktree
 * whose node_modules is a link to a shared install, make must not run `npm ci` through it: MAKEFLAGS
 * then marks node_modules/.installed as up to date (what `make build` records after its npm ci).
 */
export async function runReadmeBlock(engine: Engine, name: string, values: Record<string, string> = {}): Promise<RunResult> {
  return runReadmeScript(engine, `README block ${name}`, readmeBlock(name, values));
}

/**
 * Runs `script` (part of a README block, e.g. one of its lines, so a test can check what each line's
 * comment claims before the next one runs) the way runReadmeBlock runs a whole block.
 */
export async function runReadmeScript(engine: Engine, what: string, script: string): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...engine.env() };
  if (fs.lstatSync(path.join(REPO, 'node_modules')).isSymbolicLink()) env.MAKEFLAGS = '-o node_modules/.installed';
  const ns = engine.nsenter(false);
  // setns into a mount namespace moves the working directory to its root: go back to the checkout first.
  const argv = [...ns.slice(1), 'bash', '-euo', 'pipefail', '-c', `cd "$0"\n${script}`, REPO];
  const r = await run(ns[0], argv, { env, timeoutMs: 300_000, allowFail: true });
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${script}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}

/** The commands of a README block, one per line, each without its trailing `# comment`. */
export function blockCommands(block: string): string[] {
  return block.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean);
}

/** Where the test process reads `p` as the engine's mount namespace sees it (/proc/<pid>/root). */
export function inEngineNs(engine: Engine, p: string): string {
  if (!engine.holderPid) throw new Error('engine namespace not running');
  return path.join(`/proc/${engine.holderPid}/root`, p);
}

/**
 * Gives the engine's mount namespace its own /var/lib (an overlay whose writes land in BASE) and /srv (a
 * tmpfs), so /var/lib/hostvol and /srv/hostvol exist only there. Returns the undo, to run once no plugin
 * uses them any more (before the engine's teardown).
 */
export async function privateHostDirs(engine: Engine): Promise<() => Promise<void>> {
  const upper = path.join(engine.base, 'hostfs');
  const script = [
    `mkdir -p ${upper} && mount -t tmpfs hostfs ${upper} && mkdir ${upper}/u ${upper}/w`,
    `mount -t overlay overlay -o lowerdir=/var/lib,upperdir=${upper}/u,workdir=${upper}/w /var/lib`,
    'mount -t tmpfs srv /srv',
  ].join(' && ');
  const ns = engine.nsenter(false);
  await run(ns[0], [...ns.slice(1), 'sh', '-ec', script]);
  return async () => {
    // Lazily: a legacy hostvol may still hold its store open there until the engine's teardown stops it.
    await run(ns[0], [...ns.slice(1), 'sh', '-c', `umount -l /srv; umount -l /var/lib; umount -l ${upper}`], { allowFail: true });
  };
}

/**
 * Starts `argv` (a hostvol serve command) inside the engine's mount namespace, as a host service would
 * run on the host, with `env` as its whole environment, and waits for hostvol's socket on the default
 * path /run/docker/plugins/hostvol.sock. Output goes to BASE/<log>. It is stopped, and the socket
 * removed, in the engine's teardown after dockerd. Returns its pid.
 */
export async function serveInEngine(engine: Engine, argv: string[], env: NodeJS.ProcessEnv, log = 'service.log'): Promise<number> {
  const logFile = path.join(engine.base, log);
  const socket = path.join(engine.pluginDirs.run, 'hostvol.sock');
  const cmd = [...engine.nsenter(false), ...argv];
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(cmd[0], cmd.slice(1), { detached: true, stdio: ['ignore', fd, fd], env });
  fs.closeSync(fd);
  child.unref();
  const pid = child.pid!;
  engine.addFinalizer(async () => {
    await terminate(pid, 10_000);
    fs.rmSync(socket, { force: true });
  });
  await waitFor('hostvol.sock', () => {
    if (!isAlive(pid)) throw new Error(`hostvol exited: ${fs.readFileSync(logFile, 'utf8')}`);
    return fs.existsSync(socket);
  }, 20_000);
  return pid;
}

/**
 * Covers `dir` in the engine's mount namespace with an overlay whose writes land in BASE, so a block may
 * install files there (e.g. /etc/systemd/system) without touching the machine. Returns the undo.
 */
export async function privateOverlay(engine: Engine, dir: string): Promise<() => Promise<void>> {
  const upper = path.join(engine.base, `overlay${dir.replace(/\//g, '_')}`);
  const script = [
    `mkdir -p ${upper} && mount -t tmpfs overlayfs ${upper} && mkdir ${upper}/u ${upper}/w`,
    `mount -t overlay overlay -o lowerdir=${dir},upperdir=${upper}/u,workdir=${upper}/w ${dir}`,
  ].join(' && ');
  const ns = engine.nsenter(false);
  await run(ns[0], [...ns.slice(1), 'sh', '-ec', script]);
  return async () => {
    await run(ns[0], [...ns.slice(1), 'sh', '-c', `umount -l ${dir}; umount -l ${upper}`], { allowFail: true });
  };
}
