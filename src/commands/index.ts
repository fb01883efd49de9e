// Every admin command, in the order `hostvol --help` lists them. A new command is one line here.
import type { Command } from 'commander';
import { cloneCommand } from './clone';
import { dfCommand } from './df';
import { exportCommand } from './export';
import { importCommand } from './import';
import { doctorCommand } from './doctor';
import { inspectCommand } from './inspect';
import { leasesCommand } from './leases';
import { lsCommand } from './ls';
import { pruneCommand } from './prune';
import { releaseCommand } from './release';

export function adminCommands(): Command[] {
  return [lsCommand(), inspectCommand(), dfCommand(), pruneCommand(), leasesCommand(), releaseCommand(), doctorCommand(), exportCommand(), importCommand(), cloneCommand()];
}
