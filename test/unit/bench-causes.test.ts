// The bench's generated prose for unmet targets (bench/causes.ts), checked on made-up samples by
// bench/causes-check.ts: every unmet target gets a sentence built from the samples' values, and a met
// target none. Run here so a change to the report code that breaks a sentence fails `make test`.
test('every unmet target gets its measured cause, and a met one none (bench/causes-check.ts)', () => {
  const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    jest.isolateModules(() => require('../../bench/causes-check'));
    expect(write).toHaveBeenLastCalledWith('causes-check: ok\n');
  } finally {
    write.mockRestore();
  }
});
