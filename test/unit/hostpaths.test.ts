// Managed mode: operators write host paths; the plugin sees them under its mount, and shows them back
// as host paths.
import { parseHostPaths, toHost, toPlugin } from '../../src/volumes/hostpaths';

const map = parseHostPaths('/srv/data');

test('HOSTDIR alone maps to /host-paths, as config.json mounts it', () => {
  expect(map).toEqual({ host: '/srv/data', plugin: '/host-paths' });
  expect(parseHostPaths('/a/b/=/c')).toEqual({ host: '/a/b', plugin: '/c' });
});

test('paths inside the host directory are translated both ways', () => {
  expect(toPlugin(map, '/srv/data/app/logs')).toBe('/host-paths/app/logs');
  expect(toPlugin(map, '/srv/data')).toBe('/host-paths');
  expect(toHost(map, '/host-paths/app/logs')).toBe('/srv/data/app/logs');
});

test('paths outside are left alone (and then refused by confinement), prefixes are not matched', () => {
  expect(toPlugin(map, '/srv/database')).toBe('/srv/database');
  expect(toPlugin(map, '/etc')).toBe('/etc');
  expect(toPlugin(map, '/srv/data/../../etc')).toBe('/srv/data/../../etc');
  expect(toHost(map, '/var/lib/hostvol/volumes/v')).toBe('/var/lib/hostvol/volumes/v');
});

test('a host service maps nothing', () => {
  expect(toPlugin(undefined, '/srv/data/x')).toBe('/srv/data/x');
});

test('malformed settings are refused with the expected form', () => {
  expect(() => parseHostPaths('relative')).toThrow(/HOSTDIR or HOSTDIR=PLUGINDIR/);
  expect(() => parseHostPaths('/a=/b=/c')).toThrow(/HOSTDIR or HOSTDIR=PLUGINDIR/);
});
