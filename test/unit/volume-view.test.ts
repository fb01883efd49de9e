// What Get shows of a volume (src/volumes/view.ts): built once and handed out again while nothing it
// shows has changed, and built anew as soon as anything has: the volume's mounts, options, path or
// owner, or the store's health. The plugin socket keeps its encoded reply per view object, so a view
// handed out again after a change would be a stale Get.
import type { Store, StoreHealth } from '../../src/store/store';
import { VIEWS_KEPT, VolumeViews } from '../../src/volumes/view';
import type { Volume } from '../../src/volumes/volume';

let health: StoreHealth;
let scope: 'local' | 'global';
const store = { health: () => health, get scope() { return scope; }, node: 'node-a' } as unknown as Store;
const layout = { mountsDir: '/run/hostvol/mounts', managed: false };

function volume(name: string): Volume {
  return { name, path: `/data/${name}`, options: Object.freeze({ readOnly: false }), createdBy: 'hostvol', createdAt: '2026-12-01T00:00:00.000Z', state: 'ready', made: null, leases: new Map() };
}

let views: VolumeViews;
beforeEach(() => {
  health = { available: true };
  scope = 'local';
  views = new VolumeViews({ store, layout });
});

test('nothing changed: the same frozen view, so its encoded reply can be kept', () => {
  const v = volume('same');
  const first = views.of(v);
  expect(views.of(v)).toBe(first);
  expect(Object.isFrozen(first) && Object.isFrozen(first.status)).toBe(true);
  expect(first).toEqual({ name: 'same', mountpoint: '/data/same', createdAt: '2026-12-01T00:00:00.000Z', status: { path: '/data/same', options: { readOnly: false }, mounts: 0, readOnly: false, label: '', createdBy: 'hostvol', onRemove: 'delete' } });
});

test('a mount and its unmount each give a new view with the count', () => {
  const v = volume('mounted');
  expect(views.of(v).status.mounts).toBe(0);
  v.leases.set('id1', { count: 1, generation: 0, inherited: false });
  expect(views.of(v).status.mounts).toBe(1);
  v.leases.delete('id1');
  expect(views.of(v).status.mounts).toBe(0);
});

test('the store becoming unreachable shows as stale, with why and since; reachable again, it goes', () => {
  const v = volume('health');
  views.of(v);
  health = { available: false }; // a store that cannot say why
  expect(views.of(v).status.stale).toBe('since ?: store unavailable');
  health = { available: false, reason: 'etcd has no quorum', since: '2026-12-02T05:00:00.000Z' };
  expect(views.of(v).status.stale).toBe('since 2026-12-02T05:00:00.000Z: etcd has no quorum');
  health = { available: false, reason: 'etcd unreachable', since: '2026-12-02T05:00:00.000Z' };
  expect(views.of(v).status.stale).toBe('since 2026-12-02T05:00:00.000Z: etcd unreachable');
  health = { available: false, reason: 'etcd unreachable', since: '2026-12-02T05:07:00.000Z' }; // lost again, later
  expect(views.of(v).status.stale).toBe('since 2026-12-02T05:07:00.000Z: etcd unreachable');
  health = { available: true };
  expect(views.of(v).status).not.toHaveProperty('stale');
});

test('new options, a new path, a new owner or a new creation time give a new view', () => {
  const v = volume('changed');
  views.of(v);
  v.options = Object.freeze({ readOnly: true, label: 'z' });
  expect(views.of(v).status).toMatchObject({ readOnly: true, label: 'z' });
  v.path = '/data/moved';
  expect(views.of(v).status.path).toBe('/data/moved');
  v.createdBy = 'existing';
  expect(views.of(v).status).toMatchObject({ createdBy: 'existing', onRemove: 'keep' });
  v.createdAt = '2026-12-02T00:00:00.000Z';
  expect(views.of(v).createdAt).toBe('2026-12-02T00:00:00.000Z');
});

test('in a cluster the view names the node whose mounts it counts', () => {
  scope = 'global';
  expect(views.of(volume('clustered')).status.node).toBe('node-a');
});

test(`at most ${VIEWS_KEPT} views are kept: the oldest is built again after that many others`, () => {
  const first = volume('first');
  const kept = views.of(first);
  for (let i = 0; i < VIEWS_KEPT - 1; i++) views.of(volume(`v${i}`));
  expect(views.of(first)).toBe(kept);
  views.of(volume('one-more'));
  views.of(volume('and-another'));
  const rebuilt = views.of(first);
  expect(rebuilt).not.toBe(kept);
  expect(rebuilt).toEqual(kept);
});
