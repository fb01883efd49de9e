// Swarm on a private engine (harness doc section 2): a single-node swarm advertised and listening on
// loopback only, inside the engine's own network namespace, so nothing leaves the run. Helpers read a
// service's tasks the way an operator would (`docker service ps`), as one comparable value.
import type { Engine } from './engine';
import { waitFor } from './proc';

export async function swarmInit(e: Engine): Promise<void> {
  await e.docker(['swarm', 'init', '--advertise-addr', '127.0.0.1', '--listen-addr', '127.0.0.1:2377'], { timeoutMs: 60_000 });
}

/**
 * A Swarm of two engines whose namespaces are joined (lib/veth.ts): `manager` inits on `managerAddr`,
 * `worker` joins it with the worker token from `workerAddr`. Both listen on their private address only.
 * Returns the node IDs, manager first.
 */
export async function swarmPair(manager: Engine, managerAddr: string, worker: Engine, workerAddr: string): Promise<[string, string]> {
  await manager.docker(['swarm', 'init', '--advertise-addr', managerAddr, '--listen-addr', `${managerAddr}:2377`], { timeoutMs: 60_000 });
  const token = (await manager.docker(['swarm', 'join-token', '-q', 'worker'])).stdout.trim();
  await worker.docker(['swarm', 'join', '--token', token, '--advertise-addr', workerAddr, '--listen-addr', `${workerAddr}:2377`, `${managerAddr}:2377`], { timeoutMs: 60_000 });
  const id = async (e: Engine) => (await e.docker(['info', '-f', '{{.Swarm.NodeID}}'])).stdout.trim();
  return [await id(manager), await id(worker)];
}

export interface TaskRow {
  desired: string;
  /** First word of CurrentState: Pending, Running, Starting, Rejected, ... */
  state: string;
  error: string;
}

/** Tasks of a service, newest first, as `docker service ps` shows them. */
export async function tasks(e: Engine, service: string): Promise<TaskRow[]> {
  const r = await e.docker(['service', 'ps', '--no-trunc', '--format', '{{.DesiredState}}|{{.CurrentState}}|{{.Error}}', service]);
  return r.stdout.split('\n').filter(Boolean).map((l) => {
    const [desired, current, error] = l.split('|');
    return { desired, state: current.split(' ')[0], error };
  });
}

/** Wait until `n` tasks of the service run; returns how long that took. Fails early on a rejected task. */
export async function waitRunning(e: Engine, service: string, n: number, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  await waitFor(`${n} running task(s) of service ${service}`, async () => {
    const rows = await tasks(e, service);
    const bad = rows.find((t) => t.state === 'Rejected' || t.state === 'Failed');
    if (bad) throw new Error(`service ${service}: a task is ${bad.state}: ${bad.error}`);
    return rows.filter((t) => t.desired === 'Running' && t.state === 'Running').length >= n;
  }, timeoutMs, 250);
  return Date.now() - t0;
}
