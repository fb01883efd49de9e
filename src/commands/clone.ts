// hostvol clone SRC DST [-o k=v…] [--pause|--live]: DST created through dockerd (so dockerd knows it)
// with `-o from=SRC`, which makes hostvol copy SRC's tree into it before the volume is ready
// (owners, modes, xattrs, links; reflinks where the file system has them).
import type { Command } from 'commander';
import { HostvolError } from '../errors';
import { collectOpt, withWritersHandled, type WriterFlags } from './archive-support';
import { adminCommand, driverName, withAdmin, withDocker, type CommonFlags } from './common';

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
      await withAdmin(flags, async (admin) => {
        const driver = await driverName(flags, admin);
        await withWritersHandled(flags, src, 'clone', () =>
          withDocker(flags, (docker) => docker.createVolume(dst, driver, { ...flags.opt, from: src }, 'clone')),
        );
        process.stderr.write(`cloned volume ${src} into ${dst}\n`);
      });
    });
}
