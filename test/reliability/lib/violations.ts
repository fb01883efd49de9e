// Thousands of violations of a few kinds are unreadable one by one: group them by shape (volume
// names, paths and numbers blanked), largest group first, each with two full examples.
export function summarize(violations: string[]): string {
  const groups = new Map<string, string[]>();
  for (const v of violations) {
    const key = v.split('\n')[0].replace(/\/\S+/g, '<path>').replace(/"[^"]*"/g, '<name>').replace(/[\w.-]*\d[\w.-]*/g, 'N').slice(0, 160);
    groups.set(key, [...(groups.get(key) ?? []), v]);
  }
  return [...groups]
    .sort((a, b) => b[1].length - a[1].length)
    .map(([k, vs]) => `${vs.length} × ${k}\n    e.g. ${vs.slice(0, 2).map((v) => v.slice(0, 2000)).join('\n    e.g. ')}`)
    .join('\n');
}
