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
          let dockerVolumes: string[] | undefined;
          let dockerError: string | undefined;
          try {
            dockerVolumes = (await docker.listVolumes({}, 'hostvol doctor')).map((v) => v.Name);
          } catch (err) {
            dockerError = describe(err);
          }
          const report = await admin.json<DoctorReport>('POST', '/doctor', { fix, dockerVolumes });
          if (dockerError) report.dockerError = dockerError;
          if (!fix) return report;
          // Recording a volume in dockerd is a Create with the options it has: a no-op in hostvol.
          for (const f of report.findings.filter((x) => x.kind === 'unknown-to-dockerd')) {
            const driver = await driverName(flags, admin);
            await docker.createVolume(f.subject, driver, f.options ?? {}, 'hostvol doctor --fix').then(
              () => (f.fixed = `recorded in dockerd (driver ${driver})`),
              (err: unknown) => (f.detail += ` (the fix failed: ${describe(err)})`),
            );
          }
          return report;
        }),
      );
      print(flags, r, () => human(r));
      if (r.findings.some((f) => !f.fixed)) process.exitCode = 2;
    });
}
