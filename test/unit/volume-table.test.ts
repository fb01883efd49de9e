// The volume table answers "which volume overlaps this directory" from its index, and keeps the
// index right through set, replace and delete.
import { VolumeTable } from '../../src/volumes/volume-table';
import type { Volume } from '../../src/volumes/volume';

const vol = (name: string, path: string): Volume => ({
  name, path, options: { readOnly: false }, createdBy: 'hostvol', createdAt: '', state: 'ready', made: null, leases: new Map(),
});

test('finds the same directory, an ancestor and a descendant, never a sibling or a mere string prefix', () => {
  const t = new VolumeTable([['a', vol('a', '/srv/data/a')]]);
  expect(t.overlapping('/srv/data/a')?.name).toBe('a');
  expect(t.overlapping('/srv/data/a/deeper/x')?.name).toBe('a');
  expect(t.overlapping('/srv/data')?.name).toBe('a');
  expect(t.overlapping('/')?.name).toBe('a');
  expect(t.overlapping('/srv/data/ab')).toBeUndefined();
  expect(t.overlapping('/srv/database')).toBeUndefined();
});

test('delete and replace keep the index in step', () => {
  const t = new VolumeTable();
  t.set('a', vol('a', '/srv/a'));
  t.set('b', vol('b', '/srv/b'));
  t.delete('a');
  expect(t.overlapping('/srv/a')).toBeUndefined();
  expect(t.overlapping('/srv')?.name).toBe('b');
  t.set('b', vol('b', '/opt/b'));
  expect(t.overlapping('/srv')).toBeUndefined();
  expect(t.overlapping('/opt')?.name).toBe('b');
  t.clear();
  expect(t.overlapping('/')).toBeUndefined();
});
