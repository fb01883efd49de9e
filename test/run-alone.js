// Run: node test/run-alone.js [test/unit/x.test.ts ...]  — runs every unit test alone, one jest per test, in sequence.
// Proves "each unit test passes when run alone": a test that leans on state made by an earlier test
// (or by a file-level hook that only some tests need) fails here although the whole file passes.
// Names come from a dry listing (every test skipped by a pattern nothing matches, so no hook or test
// body runs); each test is then selected with an anchored, regex-escaped full name, and its run must
// report exactly one executed test — a name that selects two tests is a failure, not a pass.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const jest = path.join(root, 'node_modules', '.bin', 'jest');
if (!fs.existsSync(jest)) {
  console.error(`run-alone: ${jest} is missing; install the dev dependencies first`);
  process.exit(2);
}
const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'run-alone-')), 'result.json');

function runJest(args) {
  fs.rmSync(out, { force: true });
  const r = spawnSync(jest, ['--selectProjects', 'unit', '--runInBand', '--json', `--outputFile=${out}`, ...args], {
    cwd: root,
    encoding: 'utf8',
  });
  const json = fs.existsSync(out) ? JSON.parse(fs.readFileSync(out, 'utf8')) : undefined;
  return { status: r.status, json, log: `${r.stdout}${r.stderr}` };
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const listed = spawnSync(jest, ['--selectProjects', 'unit', '--listTests'], { cwd: root, encoding: 'utf8' });
// --listTests also prints "Running one project: unit"; the test files are the absolute paths.
const allFiles = listed.stdout.split('\n').filter((l) => path.isAbsolute(l)).sort();
const files = process.argv.length > 2 ? process.argv.slice(2).map((f) => path.resolve(f)) : allFiles;

const started = Date.now();
let total = 0;
const failures = [];
for (const file of files) {
  const rel = path.relative(root, file);
  const dry = runJest([file, '-t', '(?!)']); // matches no name
  const suite = dry.json?.testResults?.[0];
  if (!suite || suite.status === 'failed') {
    failures.push(`${rel}: could not list its tests\n${dry.log}`);
    continue;
  }
  const names = suite.assertionResults.map((a) => a.fullName);
  const dupes = names.filter((n, i) => names.indexOf(n) !== i);
  for (const d of new Set(dupes)) failures.push(`${rel}: two tests are named "${d}"`);
  for (const name of names) {
    total++;
    const t0 = Date.now();
    const r = runJest([file, '-t', `^${escape(name)}$`]);
    const j = r.json;
    const ran = j ? j.numPassedTests + j.numFailedTests : 0;
    const ok = r.status === 0 && j && j.numFailedTests === 0 && j.numRuntimeErrorTestSuites === 0 && ran === 1;
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    console.log(`${ok ? 'PASS' : 'FAIL'} ${secs}s ${rel} › ${name}`);
    if (!ok) {
      const why = !j ? 'jest wrote no result' : ran !== 1 ? `the name selected ${ran} tests` : 'it failed alone';
      failures.push(`${rel} › ${name}: ${why}\n${r.log.split('\n').slice(0, 60).join('\n')}`);
    }
  }
}
const secs = Math.round((Date.now() - started) / 1000);
for (const f of failures) console.log(`\n--- ${f}`);
console.log(`\nrun-alone: ${total} tests in ${files.length} files, ${failures.length} failed, ${secs}s`);
process.exit(failures.length ? 1 : 0);
