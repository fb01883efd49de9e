// The mount table is read as the kernel writes it: raw bytes with only space, tab, newline and
// backslash escaped, optional propagation fields of any number, and a `-` before the fs fields.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseMountInfo, readMounts } from '../../src/host/mountinfo';

test('fields, options and propagation of an entry', () => {
  const [e] = parseMountInfo('36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n');
  expect(e).toEqual({
    id: 36, parentId: 35, dev: '98:0', root: '/mnt1', mountPoint: '/mnt2', options: ['rw', 'noatime'], propagation: ['master:1', 'shared:7'],
  });
});

test('an entry without optional fields has no propagation', () => {
  const [e] = parseMountInfo('40 1 0:5 / /a ro - tmpfs - rw\n');
  expect([e.mountPoint, e.options, e.propagation]).toEqual(['/a', ['ro'], []]);
});

test('escaped space, tab, newline and backslash come back as themselves', () => {
  const [e] = parseMountInfo('1 0 0:1 /x\\134y /p\\011q\\012r\\040s rw - t s rw\n');
  expect([e.root, e.mountPoint]).toEqual(['/x\\y', '/p\tq\nr s']);
});

test('names are bytes: UTF-8 decodes as Node reads a path, invalid bytes do not break the line', () => {
  const line = Buffer.concat([Buffer.from('1 0 0:1 / /v/'), Buffer.from('é', 'utf8'), Buffer.from([0xff]), Buffer.from(' rw - t s rw\n')]);
  const [e] = parseMountInfo(line);
  expect(e.mountPoint).toBe(`/v/é\uFFFD`);
  expect(parseMountInfo(line.toString('utf8'))[0].mountPoint).toBe(e.mountPoint);
});

test('lines that are not entries are skipped', () => {
  expect(parseMountInfo('\n\ngarbage line\n')).toEqual([]);
});

test('readMounts reads this process\'s table, with / in it', async () => {
  expect((await readMounts()).some((m) => m.mountPoint === '/' && m.id > 0)).toBe(true);
});

test('a path with a space, mounted for real, reads back exactly', async () => {
  if (process.getuid?.() !== 0) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-mi-'));
  const target = path.join(dir, 'a b\\c');
  fs.mkdirSync(target);
  const { execFileSync } = await import('node:child_process');
  execFileSync('/usr/bin/mount', ['-t', 'tmpfs', 'none', target]);
  try {
    expect((await readMounts()).map((m) => m.mountPoint)).toContain(target);
  } finally {
    execFileSync('/usr/bin/umount', [target]);
    fs.rmSync(dir, { recursive: true });
  }
});
