// What export, import and clone share on the CLI side: the --pause/--live rule for a volume that
// running containers write to (asked of dockerd, as only dockerd knows which containers use it),
// progress on stderr when it is a terminal, and Ctrl-C that undoes what was started (unpause).
import { Transform } from 'node:stream';
import cliProgress from 'cli-progress';
import { DockerUnreachableError, type ContainerUse } from '../admin/docker';
import { ConflictError, HostvolError, describe } from '../errors';
import type { ConnectFlags } from './client';
import { humanBytes, withDocker } from './common';

export interface WriterFlags {
  pause?: boolean;
  live?: boolean;
}

/** `-o k=v` collected into a map (commander's repeatable option). */
export function collectOpt(value: string, prev: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new HostvolError(`-o ${value}: give key=value, e.g. -o uid=1000`);
  return { ...prev, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/**
 * Runs `fn` once no running container can write to volume `name` meanwhile: none mounts it
 * read-write, or --pause paused those that do (unpaused afterwards, on failure too, and at once when
 * `signal` fires: Ctrl-C), or --live says to go ahead. `what` is the command, for messages.
 */
export async function withWritersHandled<T>(flags: ConnectFlags & WriterFlags, name: string, what: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  if (flags.live) return fn();
  return withDocker(flags, async (docker) => {
    let users: ContainerUse[];
    try {
      users = await docker.containersUsing(name, `${what} (to find containers writing to volume "${name}")`);
    } catch (err) {
      if (err instanceof DockerUnreachableError) throw new HostvolError(`${describe(err)}; or pass --live to ${what} without asking`);
      throw err;
    }
    const writers = users.filter((u) => u.state === 'running' && u.rw);
    if (writers.length === 0) return fn();
    const names = writers.map((w) => w.name).join(', ');
    if (!flags.pause) {
      throw new ConflictError(`volume "${name}" is mounted read-write by running container(s) ${names}; use --pause to pause them while the ${what} runs, or --live to ${what} it as it is`);
    }
    const paused: ContainerUse[] = [];
    const unpause = async () => {
      for (const c of paused.splice(0)) {
        await docker.unpause(c.id, `${what} (unpausing ${c.name})`).catch((err) => process.stderr.write(`hostvol: could not unpause ${c.name}: ${describe(err)}; run docker unpause ${c.name}\n`));
      }
    };
    // Ctrl-C while paused: unpause at once, while the command undoes the rest of what it started.
    const onAbort = () => void unpause();
    signal.addEventListener('abort', onAbort);
    try {
      for (const w of writers) {
        if (signal.aborted) throw interrupted(signal);
        await docker.pause(w.id, `${what} --pause`);
        paused.push(w);
      }
      if (signal.aborted) throw interrupted(signal);
      return await fn();
    } finally {
      signal.removeEventListener('abort', onAbort);
      await unpause();
    }
  });
}

const interrupted = (signal: AbortSignal): Error => (signal.reason instanceof Error ? signal.reason : new HostvolError('interrupted'));

/**
 * A progress line on stderr in `format` (cli-progress tokens), or null when stderr is not a terminal:
 * then nothing is drawn at all, so a script reading stderr sees only errors. The line stays after
 * stop() (clearOnComplete false), so the last figures remain on the screen above the output.
 */
export function terminalBar(format: string): cliProgress.SingleBar | null {
  if (process.stderr.isTTY !== true) return null;
  return new cliProgress.SingleBar({ stream: process.stderr, format, hideCursor: true, clearOnComplete: false }, cliProgress.Presets.shades_classic);
}

/**
 * A pass-through that counts bytes and, when stderr is a terminal, shows them with the rate and (if
 * the total is known) the ETA. Nothing is drawn otherwise: stdout carries data, stderr stays quiet.
 */
export function progress(label: string, total?: number): Transform {
  const bar = terminalBar(total ? `${label} [{bar}] {percentage}% {done} of {all} {rate}/s ETA {eta_formatted}` : `${label} {done} {rate}/s`);
  const began = Date.now();
  let n = 0;
  const payload = () => ({ done: humanBytes(n), all: humanBytes(total ?? 0), rate: humanBytes(n / Math.max(0.001, (Date.now() - began) / 1000)) });
  bar?.start(total ?? 0, 0, payload());
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      bar?.update(total ? Math.min(n, total) : n, payload());
      cb(null, chunk);
    },
    flush(cb) {
      bar?.update(total ?? n, payload());
      bar?.stop();
      cb();
    },
    destroy(err, cb) {
      bar?.stop();
      cb(err);
    },
  });
}

/**
 * For work whose bytes the CLI does not see (clone: dockerd's create copies and answers once done):
 * while `fn` runs, a terminal's stderr shows `label` and the time spent so far. Nothing otherwise.
 */
export async function elapsed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  // cli-progress redraws on its own timer, so {duration} keeps counting while nothing else changes.
  const bar = terminalBar(`${label}, {duration}s`);
  if (!bar) return fn();
  bar.start(1, 0);
  try {
    return await fn();
  } finally {
    bar.stop();
  }
}

/**
 * Runs the whole command with a signal that Ctrl-C (or SIGTERM) aborts, so that it undoes what it
 * started (unpause, remove a half-made volume or archive) before it exits, with status 130. A second
 * Ctrl-C exits at once, for when undoing hangs on a daemon that does not answer.
 */
export async function abortOnSignal<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSignal = () => {
    process.exitCode = 130;
    if (ac.signal.aborted) {
      process.stderr.write('hostvol: interrupted twice; exiting without undoing the rest\n');
      process.exit(130);
    }
    ac.abort(new HostvolError('interrupted'));
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  try {
    return await fn(ac.signal);
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
}
