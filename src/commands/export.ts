// hostvol export NAME [FILE|-] [--compress zstd|gzip|none] [--pause|--live]: the volume as a pax
// archive, to FILE or stdout. Only the archive goes to stdout; progress goes to stderr on a terminal.
// A FILE is written under a temporary name and renamed when complete: a failed or interrupted export
// leaves no partial archive under the name asked for.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Option, type Command } from 'commander';
import type { VolumeDetail } from '../admin/volumes-routes';
import { HostvolError } from '../errors';
import { abortOnSignal, progress, withWritersHandled, type WriterFlags } from './archive-support';
import { adminCommand, withAdmin, type CommonFlags } from './common';

type Flags = CommonFlags & WriterFlags & { compress: string };

export function exportCommand(): Command {
  return adminCommand('export', 'write a volume as a tar (pax) archive to FILE or stdout', false)
    .argument('<name>', 'volume name')
    .argument('[file]', 'archive to write, - for stdout', '-')
    .addOption(new Option('--compress <kind>', 'compression').choices(['zstd', 'gzip', 'none']).default('none'))
    .option('--pause', 'pause running containers that write to the volume while it is exported')
    .option('--live', 'export even while containers write to it')
    .action(async (name: string, file: string, flags: Flags) => {
      if (flags.pause && flags.live) throw new HostvolError('give --pause or --live, not both');
      if (file === '-' && process.stdout.isTTY) throw new HostvolError('refusing to write an archive to a terminal; give a FILE or redirect stdout');
      const tmp = file === '-' ? null : path.join(path.dirname(file), `.${path.basename(file)}.hostvol-${process.pid}`);
      await abortOnSignal((signal) =>
        withAdmin(flags, (admin) =>
          withWritersHandled(flags, name, 'export', signal, async () => {
            const total = process.stderr.isTTY ? (await admin.json<VolumeDetail>('GET', `/volumes/${encodeURIComponent(name)}`)).size.apparentBytes : undefined;
            const res = await admin.request('GET', `/volumes/${encodeURIComponent(name)}/export?compress=${flags.compress}&live=1`, { signal }).catch((err) => {
              throw signal.aborted ? new HostvolError(`export of volume "${name}" interrupted; no archive written`) : err;
            });
            if (res.statusCode >= 400) {
              const text = await res.body.text();
              throw new HostvolError(JSON.parse(text || '{}').Err ?? `export failed with HTTP ${res.statusCode}`);
            }
            const out = tmp ? fs.createWriteStream(tmp, { flags: 'wx', mode: 0o600 }) : process.stdout;
            try {
              await pipeline(res.body, progress(`export ${name}`, flags.compress === 'none' ? total : undefined), out, { signal });
              if (tmp) fs.renameSync(tmp, file);
            } catch (err) {
              if (tmp) {
                // The file is opened asynchronously: removed once closed, or an open still under way would make it again.
                if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
                fs.rmSync(tmp, { force: true });
              }
              if (signal.aborted) throw new HostvolError(`export of volume "${name}" interrupted; no archive written`);
              throw new HostvolError(`export of volume "${name}" failed: ${(err as Error).message}${tmp ? '; no archive written' : '; the output is incomplete'}`);
            }
          }),
        ),
      );
    });
}
