// Export and import throughput against GNU tar on the same ~1 GiB tree of mixed files, in the same
// run: `tar -C dir -cf - .` against `hostvol`'s export (bench/archive-child.ts export, the engine
// as a process writing to a pipe), and `tar -xf -` against its import, both fed the same archive
// through a pipe (as the daemon receives one, a stream on the admin socket) and, as a second row, as
// a file on stdin. Repetitions interleave the two, alternating which goes first; the tree is read
// through before each repetition's exports (both read cached data) and `sync` runs before each timed import,
// so writeback of one run does not land in the next. Throughput is MB of tree content per second;
// the ratio is the median of per-repetition ratios (hostvol / GNU tar, above 1 = faster).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runDfBench } from './archive-df';
import { fmt, median } from './stats';

const TAR = '/usr/bin/tar';
const CHILD = path.join(__dirname, 'archive-child.js');

/** A tree of `total` bytes: a third each in big (64 MiB), medium (1 MiB) and small (1–64 KiB) files. */
export function makeTree(dir: string, total: number): { files: number; bytes: number } {
  const pool = randomBytes(8 << 20);
  let files = 0;
  let bytes = 0;
  const write = (p: string, size: number) => {
    const fd = fs.openSync(p, 'w');
    for (let done = 0; done < size; ) {
      const n = Math.min(size - done, pool.length - (files % 4096));
      done += fs.writeSync(fd, pool, files % 4096, n);
    }
    fs.closeSync(fd);
    files++;
    bytes += size;
  };
  fs.mkdirSync(path.join(dir, 'big'), { recursive: true });
  for (let i = 0; bytes < total / 3; i++) write(path.join(dir, 'big', `f${i}`), 64 << 20);
  for (let i = 0; bytes < (2 * total) / 3; i++) {
    const d = path.join(dir, 'medium', `d${i % 20}`);
    fs.mkdirSync(d, { recursive: true });
    write(path.join(d, `f${i}`), 1 << 20);
  }
  for (let i = 0; bytes < total; i++) {
    const d = path.join(dir, 'small', `d${Math.floor(i / 200)}`);
    if (i % 200 === 0) fs.mkdirSync(d, { recursive: true });
    write(path.join(d, `f${i}`), 1024 + ((i * 7919) % (63 * 1024)));
  }
  return { files, bytes };
}

/**
 * Runs `cmd args` with stdin from `input` (or nothing), counting its stdout; returns seconds. With
 * `pipe`, the input comes through a pipe from cat(1) (started inside the timed span), else the file is stdin.
 */
function timed(cmd: string, args: string[], input: string | null, pipe = false): Promise<{ s: number; out: number }> {
  return new Promise((resolve, reject) => {
    const began = performance.now();
    const feeder = input && pipe ? spawn('/bin/cat', [input], { stdio: ['ignore', 'pipe', 'inherit'] }) : null;
    const stdin = feeder ? feeder.stdout! : input ? fs.openSync(input, 'r') : 'ignore';
    const child = spawn(cmd, args, { stdio: [stdin, 'pipe', 'pipe'] });
    if (typeof stdin === 'number') fs.closeSync(stdin);
    // The command holds its own copy of the pipe's read end. Ours goes: left open, it would keep cat
    // blocked on a pipe nobody reads if the command died early.
    feeder?.stdout!.destroy();
    let out = 0;
    let err = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.length));
    child.stderr!.on('data', (b: Buffer) => (err += b));
    const ended = (p: ReturnType<typeof spawn>, event: 'close' | 'exit') =>
      new Promise<number | null>((res, rej) => p.on('error', rej).on(event, (code) => res(code)));
    // Timed to the end of the command; cat, whose last write the command read, is waited for after
    // (its exit: its stdout is the command's now, so ours never closes).
    const done = ended(child, 'close').then((code) => ({ code, s: (performance.now() - began) / 1000 }));
    Promise.all([done, feeder ? ended(feeder, 'exit') : 0]).then(([{ code, s }, fed]) => {
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${err.trim()}`));
      else if (fed !== 0) reject(new Error(`cat ${input} did not finish feeding ${cmd} (exit ${fed})`));
      else resolve({ s, out });
    }, reject);
  });
}

export interface ArchiveBenchResult {
  lines: string[];
  exportRatio: number;
  importRatio: number;
}

export async function runArchiveBench(opts: { tmp: string; bytes: number; reps: number; dfReps: number; log: (l: string) => void }): Promise<ArchiveBenchResult> {
  const { tmp, log } = opts;
  const src = path.join(tmp, 'archive-src');
  const made = makeTree(src, opts.bytes);
  const mb = made.bytes / 1e6;
  log(`  tree: ${made.files} files, ${fmt(mb)} MB under ${src}`);
  const archive = path.join(tmp, 'archive.tar');
  execFileSync('/bin/sh', ['-c', `${TAR} -C '${src}' -cf - . > '${archive}'`]);
  // Read again before each repetition's exports: both sides read from the page cache, and the imports
  // between them (and this VM's reclaim of idle pages) cannot leave one side more of it on disk.
  const warm = () => execFileSync('/bin/sh', ['-c', `${TAR} -C '${src}' -cf - . | cat > /dev/null`]);
  const node = process.execPath;
  const sides = {
    export: {
      tar: () => timed(TAR, ['-C', src, '-cf', '-', '.'], null),
      hostvol: () => timed(node, [CHILD, 'export', src], null),
    },
    import: {
      tar: (dst: string, pipe: boolean) => timed(TAR, ['-C', dst, '-xf', '-'], archive, pipe),
      hostvol: (dst: string, pipe: boolean) => timed(node, [CHILD, 'import', dst], archive, pipe),
    },
  };
  type What = 'export' | 'import' | 'importFile';
  const t: Record<What, { tar: number[]; hostvol: number[] }> = {
    export: { tar: [], hostvol: [] },
    import: { tar: [], hostvol: [] },
    importFile: { tar: [], hostvol: [] },
  };
  const ratios: Record<What, number[]> = { export: [], import: [], importFile: [] };
  for (let rep = 0; rep < opts.reps; rep++) {
    const order = rep % 2 ? (['hostvol', 'tar'] as const) : (['tar', 'hostvol'] as const);
    const e: Record<string, number> = {};
    warm();
    for (const who of order) {
      const r = await sides.export[who]();
      if (r.out < made.bytes) throw new Error(`${who} export wrote ${r.out} bytes, less than the tree's ${made.bytes}`);
      e[who] = r.s;
      t.export[who].push(r.s);
    }
    ratios.export.push(e.tar / e.hostvol);
    const i: Record<string, number> = {};
    for (const what of ['import', 'importFile'] as const) {
      for (const who of order) {
        const dst = path.join(tmp, `archive-dst-${who}`);
        fs.mkdirSync(dst);
        execFileSync('sync');
        const r = await sides.import[who](dst, what === 'import');
        i[`${what} ${who}`] = r.s;
        t[what][who].push(r.s);
        fs.rmSync(dst, { recursive: true, force: true });
      }
      ratios[what].push(i[`${what} tar`] / i[`${what} hostvol`]);
    }
    log(
      `  rep ${rep + 1}: export tar ${fmt(e.tar)} s, hostvol ${fmt(e.hostvol)} s; import through a pipe tar ${fmt(i['import tar'])} s, hostvol ${fmt(i['import hostvol'])} s; ` +
        `from a file tar ${fmt(i['importFile tar'])} s, hostvol ${fmt(i['importFile hostvol'])} s`,
    );
  }
  fs.rmSync(src, { recursive: true, force: true });
  fs.rmSync(archive, { force: true });
  const row = (what: What, label: string, cmd: string) =>
    `| ${label} | \`${cmd}\` | ${fmt(mb / median(t[what].tar))} | ${fmt(mb / median(t[what].hostvol))} | ${fmt(median(ratios[what]))}× (${fmt(Math.min(...ratios[what]))}–${fmt(Math.max(...ratios[what]))}) |`;
  const lines = [
    `A tree of ${made.files.toLocaleString('en-US')} files, ${fmt(mb)} MB (a third each in 64 MiB, 1 MiB and 1–64 KiB files), ` +
      `${opts.reps} interleaved repetitions; MB/s of file content, medians. Target: hostvol ≥ 0.8× GNU tar.`,
    '',
    '| | GNU tar | GNU tar MB/s | hostvol MB/s | hostvol / tar (range over repetitions) |',
    '|---|---|---|---|---|',
    row('export', 'export', 'tar -C dir -cf - .'),
    row('import', 'import, archive through a pipe', 'cat archive.tar \\| tar -C dir -xf -'),
    row('importFile', 'import, archive file on stdin', 'tar -C dir -xf - < archive.tar'),
    '',
    'hostvol: `bench/archive-child.ts`, the engine (`dist/archive/`) as its own process, as for GNU tar: export writes to a pipe. ' +
      'The target is judged on the import through a pipe: that is how the daemon receives an archive (a stream on the admin socket, whatever the CLI read it from) ' +
      'and how `hostvol export v - | ssh host2 hostvol import v --create -` feeds it. The second import row has the engine read the file itself, in 1 MiB reads ' +
      '(`src/archive/input.ts`), a reader that in the product runs in the `hostvol import` CLI process, not in the daemon. ' +
      'Exports read from the page cache (the tree is read through once before each repetition); each import starts after `sync` into an empty directory.',
  ];
  // Issue 12's other figure: `hostvol df` of 100k files against du, and how it scales from 10k.
  log('  hostvol df against du on 10k and 100k files');
  lines.push('', '### `hostvol df` against du, 10k and 100k files', '', ...(await runDfBench({ tmp, sizes: [10_000, 100_000], reps: opts.dfReps, log })));
  return { lines, exportRatio: median(ratios.export), importRatio: median(ratios.import) };
}

// `node bench/out/bench/archive.js [MB] [reps]`: this section alone.
if (require.main === module) {
  const tmp = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'hostvol-bench-archive-'));
  const [mbArg, repsArg] = process.argv.slice(2);
  runArchiveBench({ tmp, bytes: Number(mbArg ?? 1024) * 1024 * 1024, reps: Number(repsArg ?? 15), dfReps: 5, log: (l) => console.log(l) })
    .then((r) => console.log(r.lines.join('\n')))
    .finally(() => fs.rmSync(tmp, { recursive: true, force: true }));
}
