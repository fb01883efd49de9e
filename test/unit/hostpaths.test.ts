// Managed mode: operators write host paths; the plugin sees them under its mount, and shows them back
// as host paths.
import { parseHostPaths, toHost, toPlugin, withStateSource } from '../../src/volumes/hostpaths';

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

describe('the state mount (--state-source, set together with state.source)', () => {
  const both = withStateSource(map, '/mnt/big/hostvol/', '/var/lib/hostvol');

  test('data-root paths are shown under the host directory of the state mount', () => {
    expect(toHost(both, '/var/lib/hostvol/volumes/web')).toBe('/mnt/big/hostvol/volumes/web');
    expect(toHost(both, '/host-paths/app')).toBe('/srv/data/app');
    expect(toHost(both, '/var/lib/hostvolume/x')).toBe('/var/lib/hostvolume/x');
  });

  test('it never changes how -o path= is read', () => {
    expect(toPlugin(both, '/mnt/big/hostvol/volumes/web')).toBe('/mnt/big/hostvol/volumes/web');
  });

  test('refused without the managed-plugin mapping, or when relative', () => {
    expect(() => withStateSource(undefined, '/mnt/big', '/var/lib/hostvol')).toThrow(/managed-plugin setting: it needs --host-paths/);
    expect(() => withStateSource(map, 'big', '/var/lib/hostvol')).toThrow(/absolute host path of the state mount, got "big"/);
  });
});
