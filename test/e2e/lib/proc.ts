// Small process helpers for the e2e harness: run a command with a hard timeout, poll for a condition,
// and inspect /proc (liveness, mount namespaces, mount table). Everything here is Linux- and root-only.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /** Kill the command (SIGKILL) after this many ms; the result then has code 124. Default 120 s. */
  timeoutMs?: number;
  /** Resolve instead of throwing when the exit code is not 0. */
  allowFail?: boolean;
  cwd?: string;
}

/** Children started through run(), so a timed-out test can kill whatever is still in flight. */
const inFlight = new Set<ChildProcess>();

export function killInFlight(): void {
  for (const c of inFlight) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  inFlight.clear();
}

export class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly result: RunResult,
  ) {
    super(
      `command failed (exit ${result.code}): ${argv.join(' ')}\n` +
        `stdout: ${result.stdout.trim().slice(-2000)}\nstderr: ${result.stderr.trim().slice(-2000)}`,
    );
  }
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    inFlight.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    child.stdin!.on('error', () => {
      /* the command may exit before reading its input */
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      inFlight.delete(child);
      reject(new Error(`cannot start ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      inFlight.delete(child);
      const result: RunResult = {
        code: timedOut ? 124 : (code ?? (signal ? 128 : 1)),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr:
          Buffer.concat(err).toString('utf8') + (timedOut ? `\n[harness] killed after ${timeoutMs} ms` : ''),
      };
      if (result.code !== 0 && !opts.allowFail) reject(new CommandError([cmd, ...args], result));
      else resolve(result);
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type Check<T> = () => T | undefined | null | false | Promise<T | undefined | null | false>;

/**
 * Poll `check` every `intervalMs` until it returns a truthy value; throw after `timeoutMs` (default 30 s).
 * Call as waitFor(what, check, timeoutMs?, intervalMs?) or, without a description, waitFor(check, timeoutMs?).
 */
export async function waitFor<T>(what: string, check: Check<T>, timeoutMs?: number, intervalMs?: number): Promise<T>;
export async function waitFor<T>(check: Check<T>, timeoutMs?: number, intervalMs?: number): Promise<T>;
export async function waitFor<T>(a: string | Check<T>, b?: Check<T> | number, c?: number, d?: number): Promise<T> {
  const [what, check, timeoutMs, intervalMs] =
    typeof a === 'string' ? [a, b as Check<T>, c ?? 30_000, d ?? 50] : [String(a), a, (b as number | undefined) ?? 30_000, c ?? 50];
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped) counts as dead.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

export function signal(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL and wait again. Returns true if it had to SIGKILL. */
export async function terminate(pid: number | undefined, graceMs: number): Promise<boolean> {
  if (!isAlive(pid)) return false;
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  if (!isAlive(pid)) return false;
  signal(pid, 'SIGKILL');
  const d2 = Date.now() + 5000;
  while (isAlive(pid) && Date.now() < d2) await sleep(20);
  return true;
}

export function readPid(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The mount-namespace identity of a process, e.g. "mnt:[4026532201]", or undefined if it is gone. */
export function mountNs(pid: number | 'self'): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** Every live process whose mount namespace is `ns`. */
export function pidsInMountNs(ns: string): number[] {
  const pids: number[] = [];
  for (const ent of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    if (mountNs(Number(ent)) === ns && isAlive(Number(ent))) pids.push(Number(ent));
  }
  return pids;
}

/** Mount points (field 5 of mountinfo, unescaped) as seen by `pid`, optionally only those under `prefix`. */
export function mountPoints(pid: number | 'self', prefix?: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
  } catch {
    return [];
  }
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const points = text
    .split('\n')
    .filter(Boolean)
    .map((l) => unescape(l.split(' ')[4]));
  if (!prefix) return points;
  const p = prefix.replace(/\/+$/, '');
  return points.filter((m) => m === p || m.startsWith(p + '/'));
}

export function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}
