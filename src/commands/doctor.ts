// hostvol doctor [--fix]: where hostvol's records, its data root and dockerd disagree; --fix repairs
// what is safe and lists what it left. Exits 2 while something is left, so scripts can tell.
import type { Command } from 'commander';
import type { DoctorReport } from '../admin/doctor';
import { adminCommand, driverOf, print, table, withAdmin, type CommonFlags } from './common';

function human(r: DoctorReport): string {
  const head = r.dockerError ? `dockerd not checked: ${r.dockerError}\n` : '';
  if (r.findings.length === 0) return `${head}no problems found\n`;
  return head + table(['KIND', 'SUBJECT', 'STATUS'], r.findings.map((f) => [f.kind, f.subject, f.fixed ? `fixed: ${f.fixed}` : f.detail]));
}

export function doctorCommand(): Command {
  return adminCommand('doctor', 'check hostvol\'s records against the data root and dockerd')
    .option('--fix', 'repair what is safe; list what is left')
    .action(async (flags: CommonFlags & { fix?: boolean }) => {
      const driver = driverOf(flags);
      const r = await withAdmin(flags, (c) =>
        flags.fix ? c.json<DoctorReport>('POST', '/doctor/fix', { driver }) : c.json<DoctorReport>('GET', `/doctor${driver ? `?driver=${encodeURIComponent(driver)}` : ''}`),
      );
      print(flags, r, () => human(r));
      if (r.findings.some((f) => !f.fixed)) process.exitCode = 2;
    });
}
