// Prints one closing line over every jest run of `make test` ("tests: N passed, M failed"), so the
// result of the whole suite can be read from its last line; exits non-zero when anything failed.
const fs = require('node:fs');
let passed = 0, failed = 0, suitesFailed = 0;
for (const file of process.argv.slice(2)) {
  const r = JSON.parse(fs.readFileSync(file, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  suitesFailed += r.numRuntimeErrorTestSuites;
}
if (suitesFailed) console.log(`${suitesFailed} test suite(s) failed to run`);
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(failed || suitesFailed ? 1 : 0);
