// One side of the archive benchmark as its own process, as `hostvol export`/`import` would run:
// `export DIR` writes DIR's archive to stdout, `import DIR` reads an archive from stdin into DIR.
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '../../..');
/* eslint-disable @typescript-eslint/no-require-imports */
async function main(): Promise<void> {
  const [op, dir] = process.argv.slice(2);
  // Only the side that runs is loaded, as in a daemon that has it loaded already.
  if (op === 'export') await require(path.join(REPO, 'dist/archive/export')).exportTo(dir, process.stdout);
  // The input as `hostvol import` reads it (src/archive/input.ts): a pipe stays process.stdin, as the
  // daemon's input is a stream; a file on stdin is read in 1 MiB pieces.
  else if (op === 'import') await require(path.join(REPO, 'dist/archive/import')).importArchive(dir, require(path.join(REPO, 'dist/archive/input')).archiveInput('-'));
  else throw new Error(`usage: archive-child export|import DIR (not ${op})`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.message : err}\n`);
  process.exit(1);
});
