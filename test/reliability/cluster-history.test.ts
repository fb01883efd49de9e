// Issue 13: randomised operations on three cluster nodes at once, with hostvol nodes SIGKILLed (and
// started again, sometimes after their lease TTL) and etcd members killed, every request recorded;
// then the checker (lib/cluster-history.ts): never two writers of a Z volume at once, never a Remove
// while a lease was held; and at the end every node lists the same volumes, each with its directory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TransportError } from './lib/client';
import { HostvolCluster, errOf, waitFor } from './lib/cluster';
import { History, findViolations, timeline, violations, type Event, type Kind } from './lib/cluster-history';
import { Invariants, Rng, pick, recordFigures, seed } from './lib/figures';
import { requireBuild, sleep } from './lib/serve';

jest.setTimeout(pick(180_000, 1_800_000));

const OPS = pick(150, 1500);
/** Kills (hostvol nodes, etcd members, quorum) the run goes on for at least, however fast the operations are. */
const CHAOS = pick(3, 40);
const SEED = seed();
// Long: a longer TTL, so that a node starved by a loaded machine loses its etcd lease less often.
const TTL = pick(2, 5);
const NAMES = ['z0', 'z1', 'z2', 'p0', 'p1'];
const isZ = (v: string) => v.startsWith('z');

test('the checker finds two Z writers at once and a Remove while mounted', () => {
  const h = new History();
  const ev = (node: number, kind: Kind, start: number, end: number, id?: string): Event => ({ node, kind, volume: 'z0', id, start, end, outcome: 'ok' });
  h.record(ev(0, 'mount', 0, 1, 'a'));
  h.record(ev(1, 'mount', 2, 3, 'b'));
  h.record(ev(2, 'remove', 4, 5));
  h.record(ev(0, 'unmount', 6, 7, 'a'));
  h.killed(1, 8);
  const found = [
    'two writers of Z volume "z0": node1/a [1, 6) and node2/b [3, 8)',
    'volume "z0" removed by node3 [4, 5] while node1/a held it [1, 6)',
    'volume "z0" removed by node3 [4, 5] while node2/b held it [3, 8)',
  ];
  expect(violations(h, isZ)).toEqual(found);
  // node2 lost its etcd lease while it held b (it logged so): b is the README's cut-off case, not checked.
  h.leaseLost(1, 6);
  expect(h.holdings().map((x) => x.leaseLostAt)).toEqual([undefined, 6]);
  expect(violations(h, isZ)).toEqual([found[1]]);
  // The same history with the second mount after the first unmount, and no remove: nothing to find.
  const ok = new History();
  ok.record(ev(0, 'mount', 0, 1, 'a'));
  ok.record(ev(0, 'unmount', 2, 3, 'a'));
  ok.record(ev(1, 'mount', 4, 5, 'b'));
  expect(violations(ok, isZ)).toEqual([]);
  // A node killed while its Mount was in flight, the answer read just after: held nothing, so a
  // Remove after its lease expired is no violation (CI seed 898330484 reported one). Killed after
  // the answer, it held the volume until the kill.
  const inFlight = new History();
  inFlight.record(ev(2, 'mount', 0, 2, 'c'));
  inFlight.killed(2, 1);
  inFlight.record(ev(0, 'remove', 3, 4));
  expect(violations(inFlight, isZ)).toEqual([]);
  const after = new History();
  after.record(ev(2, 'mount', 0, 2, 'c'));
  after.killed(2, 5);
  after.record(ev(0, 'remove', 3, 4));
  expect(violations(after, isZ)).toEqual(['volume "z0" removed by node1 [3, 4] while node3/c held it [2, 5)']);
  // A failure's message shows what happened around it, in time order.
  expect(timeline(after, findViolations(after, isZ)[0])).toEqual(['[0, 2] node3 mount c: ok', '[3, 4] node1 remove: ok', '5 node3 killed']);
});

test(`${OPS}+ randomised operations on 3 nodes with ${CHAOS}+ node and etcd member kills: no two Z writers, no Remove while mounted`, async () => {
  requireBuild();
  const started = Date.now();
  const rng = new Rng(SEED);
  const c = await HostvolCluster.start('history', { nodes: 3, ttl: TTL, timeoutMs: 3000 });
  const h = new History();
  const inv = new Invariants();
  const held: Map<string, string>[] = [new Map(), new Map(), new Map()]; // per node: Mount ID → volume
  const down = new Set<number>();
  let done = 0;
  let nodeKills = 0;
  let memberKills = 0;
  let quorumLosses = 0;
  let seq = 0;
  const finished = () => done >= OPS && nodeKills + memberKills + quorumLosses >= CHAOS;
  try {
    const op = async (node: number): Promise<void> => {
      const volume = rng.pick(NAMES);
      const mine = [...held[node]];
      const r = rng.next();
      let kind: Kind;
      let id: string | undefined;
      let body: Record<string, unknown> = { Name: volume };
      if (r < 0.2) {
        kind = 'create';
        body = { Name: volume, Opts: isZ(volume) ? { Z: '' } : {} };
      } else if (r < 0.55) {
        kind = 'mount';
        id = `n${node + 1}-${seq++}`;
        body = { Name: volume, ID: id };
      } else if (r < 0.85 && mine.length) {
        kind = 'unmount';
        const [mid, v] = rng.pick(mine);
        id = mid;
        body = { Name: v, ID: mid };
        held[node].delete(mid);
      } else if (![...held[node].values()].includes(volume)) {
        // dockerd sends Remove only when none of its own containers uses the volume.
        kind = 'remove';
      } else {
        return;
      }
      const event: Event = { node, kind, volume: body.Name as string, id, start: Date.now(), end: 0, outcome: 'lost' };
      try {
        const reply = await c.call(node, `/VolumeDriver.${kind[0].toUpperCase()}${kind.slice(1)}`, body, 20_000);
        const err = errOf(reply);
        event.outcome = err ? 'err' : 'ok';
        if (err) event.err = err;
        if (kind === 'mount' && !err) held[node].set(id!, volume);
        // Requests may be refused, never fail otherwise: every Err must be one of the refusals. One
        // transient: a Create that found the directory of a volume another node was removing, which
        // was gone by the time the Create recorded the name (known race, reported as such).
        const refusal = /single-writer|in use on node|already exists|being (removed|created)|no record|unreachable|does not exist|remove it again to finish/;
        inv.check(!err || refusal.test(err) || (kind === 'create' && /no longer exists/.test(err)), () => `unexpected Err from node${node + 1} ${kind}: ${err}`);
      } catch (e) {
        if (!(e instanceof TransportError)) throw e;
      }
      event.end = Date.now();
      h.record(event);
      done++;
    };
    const worker = async (node: number) => {
      while (!finished()) {
        if (down.has(node)) await sleep(50);
        else await op(node);
      }
    };
    const chaos = async () => {
      while (!finished()) {
        await sleep(300 + rng.int(900));
        const dice = rng.next();
        if (dice < 0.15) {
          // Quorum lost for a moment: requests get clean Errs, Unmounts queue.
          const m1 = rng.int(3);
          await c.etcd.kill(m1);
          await c.etcd.kill((m1 + 1 + rng.int(2)) % 3);
          quorumLosses++;
          await sleep(500 + rng.int(1500));
          for (let m = 0; m < c.etcd.size; m++) if (!c.etcd.running(m)) await c.etcd.restart(m);
        } else if (dice < 0.55) {
          const node = rng.int(3);
          down.add(node);
          h.killed(node, Date.now());
          await c.kill(node);
          nodeKills++;
          // Sometimes back within the TTL (it takes its leases over), sometimes after (they are gone).
          await sleep(rng.chance(0.5) ? 200 : TTL * 1000 + 500);
          await c.restart(node);
          // dockerd, started again, unmounts what its dead containers had mounted.
          for (const [mid, v] of [...held[node]]) {
            held[node].delete(mid);
            const t0 = Date.now();
            // A volume removed meanwhile (its lease expired with the node) is unknown now: nothing to unmount.
            const err = errOf(await c.call(node, '/VolumeDriver.Unmount', { Name: v, ID: mid }));
            inv.check(err === '' || err === `volume "${v}" does not exist in hostvol`, `unmount after restart of node${node + 1} failed: ${err}`);
            h.record({ node, kind: 'unmount', volume: v, id: mid, start: t0, end: Date.now(), outcome: 'ok' });
          }
          down.delete(node);
        } else {
          const m = rng.int(c.etcd.size);
          await c.etcd.kill(m);
          memberKills++;
          await sleep(500 + rng.int(1500));
          await c.etcd.restart(m);
        }
      }
    };
    await Promise.all([worker(0), worker(1), worker(2), chaos()]);

    for (let i = 0; i < 3; i++) for (const at of c.leaseLosses(i)) h.leaseLost(i, at);
    const cutOff = h.holdings().filter((x) => x.leaseLostAt !== undefined).length;
    const found = findViolations(h, isZ);
    for (const v of found) inv.check(false, v.text);
    if (found.length) process.stderr.write(`around the first violation (${found[0].text}):\n${timeline(h, found[0]).join('\n')}\n`);
    const count = (kind: Kind, outcome: Event['outcome']) => h.events.filter((e) => e.kind === kind && e.outcome === outcome).length;
    // The run did something: mounts were granted and refused, volumes created and removed.
    inv.check(count('mount', 'ok') > 0 && count('create', 'ok') > 0 && count('remove', 'ok') > 0, 'the workload never mounted, created or removed');
    // Quiet now: every node converges on the same volumes, each with its directory in the shared root.
    const lists = async () => Promise.all([0, 1, 2].map(async (i) => ((await c.call(i, '/VolumeDriver.List', {})).json.Volumes as { Name: string }[]).map((v) => v.Name).sort().join(',')));
    await waitFor('every node to list the same volumes', async () => new Set(await lists()).size === 1, 10_000).catch(() => undefined);
    const final = await lists();
    inv.check(new Set(final).size === 1, () => `nodes list different volumes: ${final.join(' | ')}`);
    for (const name of final[0].split(',').filter(Boolean)) inv.check(fs.existsSync(path.join(c.dataRoot, name)), `volume ${name} is listed but has no directory`);
    recordFigures('cluster', {
      title: `cluster (3 nodes, 3 etcd members): ${h.events.length} operations`,
      seed: SEED,
      durationMs: Date.now() - started,
      checks: inv.checks,
      violations: inv.violations.length,
      kills: nodeKills,
      requests: h.events.length,
      clients: 3,
      notes: `${nodeKills} hostvol SIGKILLs, ${memberKills} etcd member kills, ${quorumLosses} quorum losses; mounts ok/refused ${count('mount', 'ok')}/${count('mount', 'err')}, removes ok/refused ${count('remove', 'ok')}/${count('remove', 'err')}; lease TTL ${TTL} s; ` +
        `${h.leaseLosses.length} etcd lease losses (a node starved or cut off past the TTL), ${cutOff} of ${h.holdings().length} mounts held across one not checked`,
    });
    inv.assertNone(`seed ${SEED}`);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${c.logs()}`);
  } finally {
    await c.stop();
  }
});
