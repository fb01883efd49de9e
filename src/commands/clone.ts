// hostvol clone SRC DST [-o k=v…] [--pause|--live]: DST created through dockerd (so dockerd knows it)
// with `-o from=SRC`, which makes hostvol copy SRC's tree into it before the volume is ready
// (owners, modes, xattrs, links; reflinks where the file system has them).
import type { Command } from 'commander';
import { HostvolError, describe } from '../errors';
import { abortOnSignal, collectOpt, elapsed, withWritersHandled, type WriterFlags } from './archive-support';
import type { VolumeDetail } from '../admin/volumes-routes';
import { adminCommand, driverName, humanBytes, refuseExisting, withAdmin, withDocker, type CommonFlags } from './common';

type Flags = CommonFlags & WriterFlags & { opt: Record<string, string> };

export function cloneCommand(): Command {
  return adminCommand('clone', 'create volume DST as a copy of volume SRC', false)
    .argument('<src>', 'volume to copy')
    .argument('<dst>', 'new volume')
    .option('-o, --opt <key=value>', 'driver option for DST (repeatable)', collectOpt, {})
    .option('--pause', 'pause running containers that write to SRC while it is copied')
    .option('--live', 'copy even while containers write to SRC')
    .action(async (src: string, dst: string, flags: Flags) => {
      if (flags.pause && flags.live) throw new HostvolError('give --pause or --live, not both');
      if (flags.opt.from !== undefined) throw new HostvolError('-o from is what clone sets; give SRC as the first argument');
      await abortOnSignal((signal) =>
        withAdmin(flags, async (admin) => {
          const driver = await driverName(flags, admin);
          const size = process.stderr.isTTY ? (await admin.json<VolumeDetail>('GET', `/volumes/${encodeURIComponent(src)}`)).size : null;
          const label = `clone ${src} to ${dst}${size ? `: ${humanBytes(size.apparentBytes ?? 0)} in ${size.inodes ?? '?'} files` : ''}`;
          await withWritersHandled(flags, src, 'clone', signal, () =>
            withDocker(flags, (docker) => elapsed(label, async () => {
              // dockerd does not pass a client's hang-up on to the plugin: a create asked for runs to its
              // end. So Ctrl-C waits for it, then removes the copy, rather than leave a volume nobody wanted.
              const onAbort = () => process.stderr.write(`hostvol: interrupted; waiting for dockerd to finish creating ${dst}, to remove it\n`);
              await refuseExisting(docker, dst, 'clone', 'give a new name, or remove it first');
              if (signal.aborted) throw new HostvolError(`clone of volume "${src}" interrupted; nothing was created`);
              signal.addEventListener('abort', onAbort);
              try {
                await docker.createVolume(dst, driver, { ...flags.opt, from: src }, 'clone');
              } finally {
                signal.removeEventListener('abort', onAbort);
              }
              if (!signal.aborted) return;
              await docker.removeVolume(dst, 'clone (undoing it)').catch((e) => {
                throw new HostvolError(`clone of volume "${src}" interrupted, but volume ${dst} could not be removed: ${describe(e)}; run docker volume rm ${dst}`);
              });
              throw new HostvolError(`clone of volume "${src}" interrupted; volume ${dst} removed`);
            })),
          );
          process.stderr.write(`cloned volume ${src} into ${dst}\n`);
        }),
      );
    });
}
