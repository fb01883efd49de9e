// Starts an archive worker (worker-main.ts) from either build: dist/ runs the compiled .js; under
// ts-jest this file is the .ts source, and the worker, which ts-jest does not reach, compiles the
// archive modules it requires with TypeScript's transpileModule (a dev dependency, tests only).
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { HostvolError, PathError } from '../errors';
import { ArchiveError } from './names';
import type { FromWorker, Job } from './worker-protocol';

function boot(): void {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { workerData } = require('node:worker_threads');
  if (workerData.typescript) {
    const fs = require('node:fs');
    const path = require('node:path');
    const crypto = require('node:crypto');
    const exts = require('node:module').Module._extensions;
    // Compiled output is cached by source hash: loading TypeScript itself costs a second per worker.
    const cache = path.join(require('node:os').tmpdir(), 'hostvol-archive-ts');
    fs.mkdirSync(cache, { recursive: true });
    exts['.ts'] = (m: { _compile(code: string, file: string): void }, file: string) => {
      const src = fs.readFileSync(file, 'utf8');
      const cached = path.join(cache, `${crypto.createHash('sha1').update(file).update(src).digest('hex')}.js`);
      let code: string;
      try {
        code = fs.readFileSync(cached, 'utf8');
      } catch {
        const ts = require(workerData.typescript);
        code = ts.transpileModule(src, { fileName: file, compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText;
        fs.writeFileSync(`${cached}.${process.pid}`, code);
        fs.renameSync(`${cached}.${process.pid}`, cached);
      }
      m._compile(code, file);
    };
  }
  require(workerData.entry);
}

export function startWorker(job: Job): Worker {
  const ext = path.extname(__filename);
  const entry = path.join(__dirname, `worker-main${ext}`);
  const typescript = ext === '.ts' ? require.resolve('typescript') : null;
  return new Worker(`(${boot.toString()})()`, { eval: true, workerData: { entry, typescript, job } });
}

/** The worker's error as the typed error the caller would have got in-process. */
export function errorFrom(m: Extract<FromWorker, { t: 'error' }>): Error {
  if (m.archive) return new ArchiveError(m.message);
  if (m.code) return Object.assign(new PathError(m.message), { code: m.code });
  return new HostvolError(m.message);
}

/** Runs a job that needs no streaming (a clone) to its end. */
export function runJob(job: Job): Promise<Extract<FromWorker, { t: 'done' }>> {
  const w = startWorker(job);
  return new Promise((resolve, reject) => {
    let settled = false;
    w.on('message', (m: FromWorker) => {
      if (m.t === 'done') (settled = true), resolve(m);
      else if (m.t === 'error') (settled = true), reject(errorFrom(m));
    });
    w.on('error', (err) => (settled = true) && reject(err));
    w.on('exit', (code) => settled || reject(new HostvolError(`archive worker exited (${code}) before finishing ${job.op}`)));
  });
}
