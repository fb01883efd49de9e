// Driver options: the allow-list, every value form, the conflicts, and messages that name the
// volume and the option.
import { parseOptions, sameOptions } from '../../src/volumes/options';

const parse = (opts: Record<string, string> | null) => parseOptions('v1', opts);

describe('accepted options', () => {
  test('null and {} both mean defaults: writable, no label', () => {
    expect(parse(null)).toEqual({ readOnly: false });
    expect(parse({})).toEqual({ readOnly: false });
  });

  test('path and its local-persist alias mountpoint', () => {
    expect(parse({ path: '/srv/a' }).path).toBe('/srv/a');
    expect(parse({ mountpoint: '/srv/a' }).path).toBe('/srv/a');
    expect(parse({ path: '/srv/a', mountpoint: '/srv/a' }).path).toBe('/srv/a');
  });

  test('uid, gid and octal mode', () => {
    expect(parse({ uid: '1000', gid: '0', mode: '0750' })).toEqual({ readOnly: false, uid: 1000, gid: 0, mode: 0o750 });
    expect(parse({ mode: '755' }).mode).toBe(0o755);
    expect(parse({ mode: '1777' }).mode).toBe(0o1777);
  });

  test.each([
    [{ ro: '' }, true],
    [{ ro: 'true' }, true],
    [{ ro: '1' }, true],
    [{ ro: 'false' }, false],
    [{ ro: '0' }, false],
    [{ rw: '' }, false],
    [{ rw: 'false' }, true],
    [{ o: 'ro' }, true],
  ])('%j gives readOnly %s', (opts, readOnly) => {
    expect(parse(opts).readOnly).toBe(readOnly);
  });

  test('z, Z and the o= list', () => {
    expect(parse({ z: '' }).label).toBe('z');
    expect(parse({ Z: '' }).label).toBe('Z');
    expect(parse({ o: 'ro,Z' })).toEqual({ readOnly: true, label: 'Z' });
    expect(parse({ o: ' rw , z ' })).toEqual({ readOnly: false, label: 'z' });
    expect(parse({ Z: 'false' }).label).toBeUndefined();
  });

  test('onremove keep and delete', () => {
    expect(parse({ onremove: 'keep' }).onRemove).toBe('keep');
    expect(parse({ onremove: 'delete' }).onRemove).toBe('delete');
  });

  test('the same options written differently compare equal', () => {
    expect(sameOptions(parse({ o: 'ro,Z', mode: '750' }), parse({ Z: '', ro: 'true', mode: '0750' }))).toBe(true);
    expect(sameOptions(parse({ ro: '' }), parse({}))).toBe(false);
  });
});

describe('refused options name the volume, the option and the fix', () => {
  test.each([
    [{ bogus: '1' }, /volume "v1": unknown option "bogus"; valid options are: path, mountpoint, uid, gid, mode, ro, rw, z, Z, o, onremove/],
    [{ path: 'relative/dir' }, /option path must be an absolute host directory/],
    [{ path: '/a', mountpoint: '/b' }, /path and mountpoint name the same setting/],
    [{ uid: '-1' }, /option uid must be a whole number/],
    [{ gid: 'wheel' }, /option gid must be a whole number/],
    [{ uid: '4294967295' }, /option uid must be a whole number from 0 to 4294967294/],
    [{ mode: '999' }, /option mode must be octal permissions such as 0750/],
    [{ mode: 'rwx' }, /option mode must be octal/],
    [{ ro: '', rw: '' }, /ro and rw contradict/],
    [{ ro: 'false', rw: 'false' }, /ro and rw contradict/],
    [{ o: 'ro', rw: 'true' }, /ro and rw contradict/],
    [{ z: '', Z: '' }, /z and Z contradict/],
    [{ o: 'z,Z' }, /z and Z contradict/],
    [{ o: 'ro,nocopy' }, /option o has unknown flag "nocopy"; valid flags are: ro, rw, z, Z/],
    [{ ro: 'yes' }, /option ro takes true, false, 1 or 0/],
    [{ o: 'ro', ro: 'false' }, /option ro is given twice with different values/],
    [{ onremove: 'purge' }, /option onremove must be keep or delete/],
  ])('%j', (opts, message) => {
    expect(() => parse(opts)).toThrow(message);
  });

  test('hostile keys are echoed escaped and clipped', () => {
    expect(() => parse({ ['\u0000'.repeat(3) + 'k'.repeat(200)]: '' })).toThrow(/"\\u0000\\u0000\\u0000k+…"/);
  });

  test('keys of Object.prototype are not options', () => {
    expect(() => parse({ constructor: 'x' })).toThrow(/unknown option "constructor"/);
    // JSON.parse makes "__proto__" an own key, as a hostile request body would.
    expect(() => parse(JSON.parse('{"__proto__":"x"}'))).toThrow(/unknown option "__proto__"/);
  });
});
