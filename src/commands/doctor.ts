// hostvol doctor [--fix]: where hostvol's records, its data root and dockerd disagree; --fix repairs
// what is safe and lists what it left. Exits 2 while something is left, so scripts can tell.
// dockerd's side is asked here, not by the daemon: a managed plugin cannot reach dockerd.
import type { Command } from 'commander';
import type { DoctorReport } from '../admin/doctor';
import { describe } from '../errors';
import { adminCommand, driverName, print, table, withAdmin, withDocker, type CommonFlags } from './common';

function human(r: DoctorReport): string {
  const head = r.dockerError ? `dockerd not checked: ${r.dockerError}\n` : '';
  if (r.findings.length === 0) return `${head}no problems found\n`;
  return head + table(['KIND', 'SUBJECT', 'STATUS'], r.findings.map((f) => [f.kind, f.subject, f.fixed ? `fixed: ${f.fixed}` : f.detail]));
}

export function doctorCommand(): Command {
  return adminCommand('doctor', 'check hostvol\'s records against the data root and dockerd')
    .option('--fix', 'repair what is safe; list what is left')
    .action(async (flags: CommonFlags & { fix?: boolean }) => {
      const fix = !!flags.fix;
      const r = await withAdmin(flags, (admin) =>
        withDocker(flags, async (docker) => {
          let dockerVolumes: Array<{ name: string; driver: string }> | undefined;
          let dockerInUse: string[] | undefined;
          let dockerError: string | undefined;
          try {
            dockerVolumes = (await docker.listVolumes({}, 'hostvol doctor')).map((v) => ({ name: v.Name, driver: v.Driver }));
            dockerInUse = await docker.volumesInUse('hostvol doctor');
          } catch (err) {
            dockerError = describe(err);
          }
          const driver = dockerVolumes ? await driverName(flags, admin) : undefined;
          const report = await admin.json<DoctorReport>('POST', '/doctor', { fix, dockerVolumes, driver, dockerInUse });
          return dockerError ? { ...report, dockerError } : report;
        }),
      );
      print(flags, r, () => human(r));
      if (r.findings.some((f) => !f.fixed)) process.exitCode = 2;
    });
}
