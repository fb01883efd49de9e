// One side of the archive benchmark as its own process, as `hostvol export`/`import` would run:
// `export DIR` writes DIR's archive to stdout, `import DIR` reads an archive from stdin into DIR.
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '../../..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { exportTo } = require(path.join(REPO, 'dist/archive/export'));
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { importArchive } = require(path.join(REPO, 'dist/archive/import'));

async function main(): Promise<void> {
  const [op, dir] = process.argv.slice(2);
  if (op === 'export') {
    await exportTo(dir, process.stdout);
  } else if (op === 'import') await importArchive(dir, process.stdin);
  else throw new Error(`usage: archive-child export|import DIR (not ${op})`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.message : err}\n`);
  process.exit(1);
});
