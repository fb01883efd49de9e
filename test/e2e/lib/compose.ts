// docker-compose 1.29 (Debian's package, installed by install-engine.sh) against one private engine:
// the same DOCKER_HOST the docker CLI uses, a project name per call so projects never mix, and the
// compose file written under the run's BASE (deleted with it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DockerOptions, Engine } from './engine';
import { run, type RunResult } from './proc';

export const COMPOSE_CLI = process.env.HOSTVOL_E2E_COMPOSE || 'docker-compose';

export class ComposeProject {
  readonly file: string;

  constructor(
    readonly engine: Engine,
    readonly name: string,
  ) {
    this.file = path.join(engine.base, `${name}.compose.yml`);
  }

  /** (Re)writes the compose file; the object is written as JSON, which YAML parsers read as it is. */
  write(doc: unknown): void {
    fs.writeFileSync(this.file, `${JSON.stringify(doc, null, 2)}\n`);
  }

  /** `docker-compose -p NAME -f FILE args…`; throws on a non-zero exit unless allowFail. */
  run(args: string[], opts: DockerOptions = {}): Promise<RunResult> {
    const env = { ...this.engine.env(), COMPOSE_INTERACTIVE_NO_CLI: '1', COMPOSE_HTTP_TIMEOUT: '120' };
    return run(COMPOSE_CLI, ['--ansi', 'never', '-p', this.name, '-f', this.file, ...args], { env, timeoutMs: opts.timeoutMs ?? 120_000, ...opts });
  }
}
