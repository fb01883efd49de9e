// hostvol import NAME [FILE|-] [--create -o k=v…] [--force]: an archive (plain, gzip or zstd) into a
// volume, all or nothing. --create makes the volume through dockerd first (so dockerd knows it), and
// removes it again if the import fails, so a failed `export | ssh host2 hostvol import --create`
// leaves nothing behind. The summary goes to stderr: stdout carries nothing but data.
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { HostvolError, describe } from '../errors';
import { abortOnSignal, collectOpt, progress } from './archive-support';
import { adminCommand, driverName, humanBytes, withAdmin, withDocker, type CommonFlags } from './common';

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
      const input: Readable = file === '-' ? process.stdin : fs.createReadStream(file);
      const total = file === '-' ? undefined : fs.statSync(file).size;
      await withAdmin(flags, async (admin) => {
        let created = false;
        if (flags.create) {
          const driver = await driverName(flags, admin);
          await withDocker(flags, async (docker) => {
            const exists = await docker.call('GET', `/volumes/${encodeURIComponent(name)}`, 'import --create').then(
              () => true,
              (err) => ((err as { status?: number }).status === 404 ? false : Promise.reject(err)),
            );
            if (exists) throw new HostvolError(`volume "${name}" already exists; import into it without --create`);
            await docker.createVolume(name, driver, flags.opt, 'import --create');
            created = true;
          });
        }
        try {
          const r = await abortOnSignal(async (signal) => {
            const res = await admin.request('POST', `/volumes/${encodeURIComponent(name)}/import${flags.force ? '?force=1' : ''}`, {
              body: input.pipe(progress(`import ${name}`, total)),
              headers: { 'content-type': 'application/octet-stream' },
              signal,
            });
            const text = await res.body.text();
            const parsed = JSON.parse(text || '{}');
            if (res.statusCode >= 400) throw new HostvolError(parsed.Err ?? `import failed with HTTP ${res.statusCode}`);
            return parsed as { entries: number; bytes: number };
          });
          process.stderr.write(`imported ${r.entries} entries (${humanBytes(r.bytes)} of file data) into volume ${name}\n`);
        } catch (err) {
          if (created) {
            await withDocker(flags, (d) => d.removeVolume(name, 'import --create (undoing it)')).catch((e) =>
              process.stderr.write(`hostvol: could not remove volume ${name} after the failed import: ${describe(e)}\n`),
            );
          }
          throw err;
        }
      });
    });
}
