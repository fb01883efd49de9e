// hostvol inspect NAME…: one volume in full: where its data is, its options, leases and whether a
// container has it mounted, and its size (from hostvol's admin API), and the containers that use it
// (from dockerd, asked directly; when it does not answer, inspect says so and still shows the rest).
import type { Command } from 'commander';
import type { ContainerUse } from '../admin/docker';
import type { VolumeDetail } from '../admin/volumes-routes';
import { describe } from '../errors';
import { adminCommand, humanBytes, print, withAdmin, withDocker, type CommonFlags } from './common';

export interface Inspected extends VolumeDetail {
  /** From dockerd; `containersError` says why they are missing when dockerd could not be asked. */
  containers?: ContainerUse[];
  containersError?: string;
}

const visibility = (v: boolean | null) => (v === null ? 'cannot tell (no dockerd visible to hostvol)' : v ? 'yes' : 'no');

function human(d: Inspected): string {
  const lines = [
    `Name:         ${d.name}`,
    `Host path:    ${d.hostPath}`,
    `Mountpoint:   ${d.mountpoint}`,
    `State:        ${d.state}`,
    `Created:      ${d.createdAt} (${d.createdBy === 'hostvol' ? 'directory made by hostvol' : 'existing directory'})`,
    `Options:      ${JSON.stringify(d.options)}`,
    `Size:         ${d.size.error ? `unknown: ${d.size.error}` : `${humanBytes(d.size.bytes ?? 0)} on disk, ${humanBytes(d.size.apparentBytes ?? 0)} apparent, ${d.size.inodes} inodes`}`,
    `Mounted in a container on this node (${d.node}): ${visibility(d.mountVisible)}`,
    `Leases:       ${d.leases.length === 0 ? 'none' : ''}`,
    ...d.leases.map((l) => `  node ${l.node}  ${l.id}  count ${l.count}  generation ${l.generation}${l.stale ? '  stale' : ''}`),
    ...(d.othersUnknown ? [`  (${d.othersUnknown})`] : []),
    `Containers:   ${d.containersError ? `unknown: ${d.containersError}` : d.containers!.length === 0 ? 'none' : ''}`,
    ...(d.containers ?? []).map((c) => `  ${c.name}  ${c.state}  ${c.rw ? 'rw' : 'ro'}  at ${c.destination}`),
  ];
  return `${lines.join('\n')}\n`;
}

export function inspectCommand(): Command {
  return adminCommand('inspect', 'show volumes in detail: path, options, leases, containers, size')
    .argument('<name...>', 'volume names')
    .action(async (names: string[], flags: CommonFlags) => {
      const found: Inspected[] = [];
      const errors: string[] = [];
      await withAdmin(flags, async (c) => {
        for (const n of names) {
          await c.json<VolumeDetail>('GET', `/volumes/${encodeURIComponent(n)}`).then((d) => found.push(d), (e: unknown) => errors.push(describe(e)));
        }
      });
      await withDocker(flags, async (docker) => {
        for (const d of found) {
          await docker.containersUsing(d.name, `hostvol inspect ${d.name}`).then((c) => (d.containers = c), (e: unknown) => (d.containersError = describe(e)));
        }
      });
      print(flags, found, () => found.map(human).join('\n'));
      // Like docker inspect: what was found is printed, then each miss, and the exit status says some failed.
      if (errors.length) {
        for (const e of errors) process.stderr.write(`hostvol: ${e}\n`);
        process.exitCode = 1;
      }
    });
}
