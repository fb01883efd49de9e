// The host worker pool: one worker while jobs come one at a time, more only while they overlap, never
// more than MAX_WORKERS; a failed job reaches its caller with the errno it reported.
import { JobFailure, MAX_WORKERS, runJob, stopWorkers, workersRunning } from '../../src/host/host-worker';

afterEach(() => stopWorkers());

test('jobs one after another share one worker', async () => {
  for (let i = 0; i < 5; i++) await runJob('libc', 'llistxattr', ['/']);
  expect(workersRunning()).toBe(1);
});

test('overlapping jobs start more workers, up to MAX_WORKERS, and keep them', async () => {
  await Promise.all(Array.from({ length: 2 }, () => runJob('libc', 'llistxattr', ['/'])));
  expect(workersRunning()).toBe(2);
  await Promise.all(Array.from({ length: MAX_WORKERS * 3 }, () => runJob('libc', 'llistxattr', ['/'])));
  expect(workersRunning()).toBe(MAX_WORKERS);
  await runJob('libc', 'llistxattr', ['/']);
  expect(workersRunning()).toBe(MAX_WORKERS);
});

test('a failing job rejects with its errno', async () => {
  await expect(runJob('libc', 'llistxattr', ['/no/such/path/at/all'])).rejects.toMatchObject({ constructor: JobFailure, code: 'ENOENT' });
});
