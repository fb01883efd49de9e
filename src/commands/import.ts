// hostvol import NAME [FILE|-] [--create -o k=v…] [--force]: an archive (plain, gzip or zstd) into a
// volume, all or nothing. --create makes the volume through dockerd first (so dockerd knows it), and
// removes it again if the import fails, so a failed `export | ssh host2 hostvol import --create`
// leaves nothing behind. The summary goes to stderr: stdout carries nothing but data.
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { archiveInput } from '../archive/input';
import { HostvolError, describe } from '../errors';
import { abortOnSignal, collectOpt, progress } from './archive-support';
import { adminCommand, driverName, humanBytes, refuseExisting, withAdmin, withDocker, type CommonFlags } from './common';

type Flags = CommonFlags & { create?: boolean; opt: Record<string, string>; force?: boolean };

export function importCommand(): Command {
  return adminCommand('import', 'read a tar archive (plain, gzip or zstd) from FILE or stdin into a volume', false)
    .argument('<name>', 'volume name')
    .argument('[file]', 'archive to read, - for stdin', '-')
    .option('--create', 'create the volume through dockerd first')
    .option('-o, --opt <key=value>', 'driver option for --create (repeatable)', collectOpt, {})
    .option('--force', 'replace the content of a volume that is not empty')
    .action(async (name: string, file: string, flags: Flags) => {
      if (Object.keys(flags.opt).length && !flags.create) throw new HostvolError('-o options apply to --create only');
      if (file === '-' && process.stdin.isTTY) throw new HostvolError('refusing to read an archive from a terminal; give a FILE or pipe one in');
      const input: Readable = archiveInput(file);
      const total = file === '-' ? undefined : fs.statSync(file).size;
      await abortOnSignal((signal) =>
        withAdmin(flags, async (admin) => {
          let created = false;
          if (flags.create) {
            const driver = await driverName(flags, admin);
            await withDocker(flags, async (docker) => {
              await refuseExisting(docker, name, 'import --create', 'import into it without --create');
              if (signal.aborted) throw new HostvolError(`import into volume "${name}" interrupted; nothing was created`);
              // Not abortable once asked (dockerd finishes it regardless): undone below if Ctrl-C came meanwhile.
              await docker.createVolume(name, driver, flags.opt, 'import --create');
              created = true;
            });
          }
          try {
            const res = await admin.request('POST', `/volumes/${encodeURIComponent(name)}/import${flags.force ? '?force=1' : ''}`, {
              body: input.pipe(progress(`import ${name}`, total)),
              headers: { 'content-type': 'application/octet-stream' },
              signal,
            });
            const text = await res.body.text();
            const parsed = JSON.parse(text || '{}');
            if (res.statusCode >= 400) throw new HostvolError(parsed.Err ?? `import failed with HTTP ${res.statusCode}`);
            const r = parsed as { entries: number; bytes: number };
            process.stderr.write(`imported ${r.entries} entries (${humanBytes(r.bytes)} of file data) into volume ${name}\n`);
          } catch (err) {
            // The daemon drops its staging directory when the request goes; the volume --create made goes too.
            let undone = '';
            if (created) {
              undone = await withDocker(flags, (d) => d.removeVolume(name, 'import --create (undoing it)')).then(
                () => `; volume ${name} removed`,
                (e) => `; could not remove volume ${name}: ${describe(e)}; run docker volume rm ${name}`,
              );
            }
            if (signal.aborted) throw new HostvolError(`import into volume "${name}" interrupted${undone || '; the volume is as it was'}`);
            if (undone && !undone.startsWith('; volume')) process.stderr.write(`hostvol${undone}\n`);
            throw err;
          }
        }),
      );
    });
}
