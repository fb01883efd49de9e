// A veth pair between the network namespaces of two engines (lib/engine.ts), so that two private dockerds
// can form a Swarm. Both ends are created directly inside the engines' namespaces (`ip link add … netns
// PID type veth peer … netns PID`): the pair never exists in the host's namespace, and the private test
// addresses on it are seen by no one but the two engines. Before touching anything it checks that each
// target is a namespace of the project's own holder process, not the host's (nor the same one twice).
import * as fs from 'node:fs';
import type { Engine } from './engine';
import { run } from './proc';

export interface VethEnd {
  engine: Engine;
  /** Interface name inside the engine's namespace. */
  dev: string;
  /** IPv4 address of this end (a /30 shared with the other end). */
  addr: string;
}

export interface Veth {
  a: VethEnd;
  b: VethEnd;
  /** Delete the pair (deleting one end deletes both). Idempotent; the namespaces' end removes it too. */
  remove(): Promise<void>;
}

/** The network namespace identity of a process ("net:[...]"), or undefined if it is gone. */
export function netNs(pid: number | 'self'): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
}

/** Names of the links in the host's (this process's) network namespace. */
export async function hostLinks(): Promise<string[]> {
  const r = await run('ip', ['-o', 'link', 'show'], { timeoutMs: 10_000 });
  return r.stdout.split('\n').filter(Boolean).map((l) => l.split(': ')[1].split('@')[0]);
}

/** `ip ARGS` inside the network namespace of `e`'s holder (and only its network namespace). */
export function ipIn(e: Engine, args: string[]): Promise<unknown> {
  return run('nsenter', ['-t', String(holder(e)), '-n', '--', 'ip', ...args], { timeoutMs: 10_000 });
}

function holder(e: Engine): number {
  if (!e.holderPid) throw new Error(`engine ${e.id}: its namespace is not running`);
  return e.holderPid;
}

/**
 * Join the namespaces of `a` and `b` with a veth pair on 10.213.<subnet>.0/30 (.1 on `a`, .2 on `b`) and
 * check with a ping that packets cross it. The range is private (RFC 1918) and only ever configured
 * inside the two engines' namespaces, so it cannot clash with the host's routes whatever they are.
 */
export async function joinEngines(a: Engine, b: Engine, subnet = Math.floor(Math.random() * 256)): Promise<Veth> {
  const [pa, pb] = [holder(a), holder(b)];
  const [na, nb, host] = [netNs(pa), netNs(pb), netNs('self')];
  if (!na || !nb || na === host || nb === host || na === nb) {
    throw new Error(`refusing to create a veth pair: engine namespaces ${na} (${a.id}) and ${nb} (${b.id}) must be two private namespaces, not the host's ${host}`);
  }
  // Interface names are at most 15 bytes; the engine id is unique per run.
  const end = (e: Engine, addr: string): VethEnd => ({ engine: e, dev: `hv${e.id}`.slice(0, 15), addr });
  const ea = end(a, `10.213.${subnet}.1`);
  const eb = end(b, `10.213.${subnet}.2`);
  await run('ip', ['link', 'add', ea.dev, 'netns', String(pa), 'type', 'veth', 'peer', 'name', eb.dev, 'netns', String(pb)], { timeoutMs: 10_000 });
  const veth: Veth = {
    a: ea,
    b: eb,
    async remove() {
      // Only the engine namespace is entered; a namespace that is already gone took the pair with it.
      if (netNs(pa) === na) await ipIn(a, ['link', 'del', ea.dev]).catch(() => undefined);
    },
  };
  try {
    for (const e of [ea, eb]) {
      await ipIn(e.engine, ['addr', 'add', `${e.addr}/30`, 'dev', e.dev]);
      await ipIn(e.engine, ['link', 'set', e.dev, 'up']);
    }
    await run('nsenter', ['-t', String(pa), '-n', '--', '/bin/busybox', 'ping', '-c', '1', '-W', '5', eb.addr], { timeoutMs: 15_000 });
  } catch (e) {
    await veth.remove();
    throw e;
  }
  return veth;
}
