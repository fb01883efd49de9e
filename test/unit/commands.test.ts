// The hostvol commands as a user runs them, against a real daemon's admin socket: tables for people,
// --format json for scripts (the same data the admin API answers), exit statuses that say what is left.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { adminCommands } from '../../src/commands';
import { humanBytes, table } from '../../src/commands/common';
import { destroy, sandbox, type Sandbox } from './support';

let sb: Sandbox;
beforeAll(async () => {
  sb = await sandbox({ nodeName: 'cmd-node' });
  await sb.call('/VolumeDriver.Create', { Name: 'cmd-a' });
  fs.writeFileSync(path.join(sb.config.dataRoot, 'cmd-a', 'f'), Buffer.alloc(5000, 1));
  await sb.call('/VolumeDriver.Mount', { Name: 'cmd-a', ID: 'lease-1' });
});
afterAll(() => destroy(sb));
afterEach(() => {
  process.exitCode = undefined;
});

/** Runs `hostvol <args>` in this process; what it printed and the exit status it set. */
async function hostvol(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  const cmd = adminCommands().find((c: Command) => c.name() === args[0])!;
  let out = '';
  let err = '';
  process.exitCode = undefined;
  const w1 = jest.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const w2 = jest.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    await cmd.exitOverride().parseAsync([...args.slice(1), '--admin-socket', sb.config.adminSocket!], { from: 'user' });
  } finally {
    w1.mockRestore();
    w2.mockRestore();
  }
  return { out, err, code: Number(process.exitCode ?? 0) };
}

test('table pads every column but the last; sizes are decimal like docker\'s', () => {
  expect(table(['A', 'LONG HEADER', 'C'], [['xx', 1, 'end'], ['y', 22, '']])).toBe('A   LONG HEADER  C\nxx  1            end\ny   22\n');
  expect([0, 999, 1000, 1234, 5_000_000, 1.5e12].map(humanBytes)).toEqual(['0B', '999B', '1kB', '1.23kB', '5MB', '1.5TB']);
});

test('ls prints a table with the nodes holding leases, and the admin API\'s list with --format json', async () => {
  const { out } = await hostvol('ls');
  const real = fs.realpathSync(path.join(sb.config.dataRoot, 'cmd-a'));
  expect(out.split('\n')[0]).toMatch(/^NAME\s+STATE\s+LEASES\s+NODES\s+HOST PATH$/);
  expect(out).toMatch(new RegExp(`^cmd-a\\s+ready\\s+1\\s+cmd-node\\s+${real}$`, 'm'));
  const json = JSON.parse((await hostvol('ls', '--format', 'json')).out);
  expect(json.find((v: { name: string }) => v.name === 'cmd-a')).toMatchObject({ hostPath: real, leases: 1, nodes: ['cmd-node'] });
});

test('inspect prints each volume found, then each miss on stderr, and exits 1', async () => {
  const r = await hostvol('inspect', 'cmd-a', 'cmd-none');
  expect(r.out).toMatch(/^Name: +cmd-a$/m);
  expect(r.out).toMatch(/^ {2}node cmd-node {2}lease-1 {2}count 1 {2}generation 0$/m);
  expect(r.out).toMatch(/^Mounted in a container on this node \(cmd-node\): /m);
  expect(r.out).toMatch(/^Containers: +unknown: hostvol inspect cmd-a needs dockerd, which does not answer at /m);
  expect(r.err).toBe('hostvol: volume "cmd-none" does not exist in hostvol\n');
  expect(r.code).toBe(1);
  const json = JSON.parse((await hostvol('inspect', 'cmd-a', '--format', 'json')).out);
  expect(json).toHaveLength(1);
  expect(json[0].size.apparentBytes).toBeGreaterThanOrEqual(5000);
});

test('df prints volumes, a total and the file systems', async () => {
  const { out } = await hostvol('df', 'cmd-a');
  expect(out).toMatch(/^VOLUME\s+SIZE\s+APPARENT\s+INODES\s+ERROR$/m);
  expect(out).toMatch(/^cmd-a\s+\S+B\s+\S+B\s+2$/m);
  expect(out).toMatch(/^TOTAL\s+\S+B\s+\S+B\s+2$/m);
  expect(out).toMatch(/^FILESYSTEM OF\s+FREE\s+SIZE\s+FREE INODES\s+VOLUMES$/m);
  const json = JSON.parse((await hostvol('df', 'cmd-a', '--format', 'json')).out);
  expect(json.total.inodes).toBe(2);
});

test('leases lists, release refuses what it cannot judge and releases with --force', async () => {
  const listed = (await hostvol('leases', 'cmd-a')).out;
  expect(listed.split('\n')[0]).toMatch(/^VOLUME\s+NODE\s+ID\s+COUNT\s+GENERATION\s+STALE\s+MOUNTED$/);
  expect(listed).toMatch(/^cmd-a\s+cmd-node\s+lease-1\s+1\s+0\s+no\s+(unknown|no|yes)$/m);
  (await sb.daemon.ready).deps.inUse = async () => undefined;
  await expect(hostvol('release', 'cmd-a', '--id', 'lease-1')).rejects.toThrow(/lease\(s\) lease-1 not released/);
  expect((await hostvol('release', 'cmd-a', '--id', 'lease-1', '--force')).out).toBe('released cmd-a lease-1\n');
  expect(JSON.parse((await hostvol('leases', 'cmd-a', '--format', 'json')).out)[0].leases).toEqual([]);
});

test('doctor exits 2 while something is left, 0 once nothing is', async () => {
  fs.mkdirSync(path.join(sb.config.dataRoot, 'stray'));
  const found = await hostvol('doctor');
  expect(found.out).toMatch(/^orphan-directory\s+\S+\/stray\s+a directory in the data root that no volume uses/m);
  expect(found.code).toBe(2);
  const fixed = await hostvol('doctor', '--fix');
  expect(fixed.out).toMatch(/^orphan-directory\s+\S+\/stray\s+fixed: removed: it was empty$/m);
  expect(fixed.code).toBe(0);
  expect((await hostvol('doctor')).out).toMatch(/no problems found\n$/);
});
