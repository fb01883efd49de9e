// Issue 3, scenarios 5, 6, 7, 9, 10: volumes shared between containers, backup/restore, anonymous
// volumes, concurrent use and the single-writer option Z.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  BB_IMAGE, DRIVER, HEX64, IDLE, RUN, calls, e2eSuite, inspectContainer, inspectVolume, uniq, volumeRows,
} from './harness';

const s = e2eSuite();
const bb = (args: string[], opts = {}) => s.docker(['run', '--rm', ...RUN, ...args], opts);
const exec = (c: string, script: string, opts = {}) => s.docker(['exec', c, 'sh', '-c', script], opts);

/** Relative path -> content hash / symlink target / "dir mode", for comparing trees on the host. */
function treeDigest(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const ent of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = path.join(rel, ent.name);
      const abs = path.join(root, r);
      const st = fs.lstatSync(abs);
      const mode = (st.mode & 0o7777).toString(8);
      if (ent.isSymbolicLink()) out[r] = `link ${fs.readlinkSync(abs)}`;
      else if (ent.isDirectory()) {
        out[r] = `dir ${mode}`;
        walk(r);
      } else out[r] = `file ${mode} ${crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex')}`;
    }
  };
  walk('');
  return out;
}

describe('containers and volumes', () => {
  s.scenario('5. volume containers: dbstore, db1 --volumes-from dbstore, db3 --volumes-from db1 share data; rm keeps the volume', async () => {
    const { hv } = s;
    const t = uniq('');
    const [vol, dbstore, db1, db3] = [`dbdata${t}`, `dbstore${t}`, `db1${t}`, `db3${t}`];
    const mark = await hv.mark();
    await s.docker(['create', ...RUN, '-v', `${vol}:/dbdata`, '--volume-driver', DRIVER, '--name', dbstore, BB_IMAGE, '/bin/true']);
    await s.docker(['run', '-d', ...RUN, '--name', db1, '--volumes-from', dbstore, BB_IMAGE, ...IDLE]);
    await s.docker(['run', '-d', ...RUN, '--name', db3, '--volumes-from', db1, BB_IMAGE, ...IDLE]);
    await exec(db1, 'echo from-db1 > /dbdata/a');
    expect((await exec(db3, 'cat /dbdata/a && echo from-db3 > /dbdata/b')).stdout).toBe('from-db1\n');
    expect((await exec(db1, 'cat /dbdata/b')).stdout).toBe('from-db3\n');
    expect(fs.readFileSync(path.join(hv.dataRoot, vol, 'a'), 'utf8')).toBe('from-db1\n');
    const info = await inspectVolume(s.engine, vol);
    expect(info.Driver).toBe(DRIVER);
    expect(info.Status.mounts).toBe(2);

    await s.docker(['rm', '-f', '-v', dbstore, db1]);
    expect(await volumeRows(s.engine)).toContain(`${DRIVER} ${vol}`);
    expect((await exec(db3, 'cat /dbdata/a /dbdata/b')).stdout).toBe('from-db1\nfrom-db3\n');
    await s.docker(['rm', '-f', '-v', db3]);
    expect(await volumeRows(s.engine)).toContain(`${DRIVER} ${vol}`);
    expect(fs.readdirSync(path.join(hv.dataRoot, vol)).sort()).toEqual(['a', 'b']);
    const reqs = await hv.since(mark);
    expect(calls(reqs, 'Create', vol)).toHaveLength(1);
    expect(calls(reqs, 'Remove', vol)).toHaveLength(0);
    expect((await inspectVolume(s.engine, vol)).Status.mounts).toBe(0);
    await s.docker(['volume', 'rm', vol]);
  });

  s.scenario('6. backup with tar through --volumes-from, restore into a fresh volume with --strip 1: identical tree', async () => {
    const { hv, engine } = s;
    const t = uniq('');
    const [vol, store, vol2, store2] = [`bkdata${t}`, `bkstore${t}`, `bkdata2${t}`, `bkstore2${t}`];
    const backup = path.join(engine.base, `backup${t}`);
    fs.mkdirSync(backup);
    await s.docker(['create', ...RUN, '-v', `${vol}:/dbdata`, '--volume-driver', DRIVER, '--name', store, BB_IMAGE, '/bin/true']);
    await bb(['--volumes-from', store, BB_IMAGE, 'sh', '-c', [
      'set -e', 'cd /dbdata', 'mkdir -p d1/d2 empty', 'head -c 300000 /dev/urandom > d1/blob',
      'head -c 7 /dev/urandom > d1/d2/small', 'echo text > top.txt', 'ln -s d1/blob link', 'chmod 0640 top.txt',
      'chmod 0750 d1/d2', ': > d1/zero',
    ].join('\n')]);
    const tar = await bb(['--volumes-from', store, '-v', `${backup}:/backup`, BB_IMAGE, 'tar', 'cvf', '/backup/backup.tar', '/dbdata']);
    expect(tar.stdout + tar.stderr).toContain('dbdata/d1/blob');
    expect(fs.statSync(path.join(backup, 'backup.tar')).size).toBeGreaterThan(300000);

    // migrate: a new container with a fresh hostvol volume, restored from the archive
    await s.docker(['run', ...RUN, '-v', `${vol2}:/dbdata`, '--volume-driver', DRIVER, '--name', store2, BB_IMAGE, '/bin/true']);
    await bb(['--volumes-from', store2, '-v', `${backup}:/backup`, BB_IMAGE, 'sh', '-c', 'cd /dbdata && tar xvf /backup/backup.tar --strip 1']);
    const original = treeDigest(path.join(hv.dataRoot, vol));
    const restored = treeDigest(path.join(hv.dataRoot, vol2));
    expect(Object.keys(original)).toHaveLength(8);
    expect(restored).toEqual(original);
    // and the same seen from inside containers
    const sums = 'cd /dbdata && find . -type f | sort | xargs md5sum';
    const a = await bb(['--volumes-from', store, BB_IMAGE, 'sh', '-c', sums]);
    const b = await bb(['--volumes-from', store2, BB_IMAGE, 'sh', '-c', sums]);
    expect(a.stdout.split('\n').filter(Boolean)).toHaveLength(4);
    expect(b.stdout).toBe(a.stdout);
    await s.docker(['rm', '-v', store, store2]);
    await s.docker(['volume', 'rm', vol, vol2]);
  });

  s.scenario('7. anonymous volumes: run --rm removes them through hostvol; rm -v removes anonymous, keeps named', async () => {
    const { hv } = s;
    let mark = await hv.mark();
    await bb(['--volume-driver', DRIVER, '-v', '/foo', BB_IMAGE, 'sh', '-c', 'echo x > /foo/f']);
    let reqs = await hv.since(mark);
    const created = calls(reqs, 'Create');
    expect(created).toHaveLength(1);
    const anon = created[0].body.Name as string;
    expect(anon).toMatch(HEX64);
    expect(calls(reqs, 'Mount', anon)).toHaveLength(1);
    expect(calls(reqs, 'Unmount', anon)).toHaveLength(1);
    expect(calls(reqs, 'Remove', anon).map((r) => r.reply)).toEqual([{}]);
    expect(fs.existsSync(path.join(hv.dataRoot, anon))).toBe(false);
    expect((await volumeRows(s.engine)).some((r) => r.endsWith(anon))).toBe(false);

    const c = uniq('anonc');
    const named = uniq('keep');
    mark = await hv.mark();
    await s.docker(['run', ...RUN, '--name', c, '--volume-driver', DRIVER, '-v', '/anon', '-v', `${named}:/named`, BB_IMAGE, 'sh', '-c', 'echo a > /anon/f; echo n > /named/f']);
    const mounts = (await inspectContainer(s.engine, c)).Mounts as { Name: string; Destination: string; Driver: string }[];
    const anon2 = mounts.find((m) => m.Destination === '/anon')!.Name;
    expect(anon2).toMatch(HEX64);
    expect(mounts.every((m) => m.Driver === DRIVER)).toBe(true);
    expect(fs.readFileSync(path.join(hv.dataRoot, anon2, 'f'), 'utf8')).toBe('a\n');
    await s.docker(['rm', '-v', c]);
    reqs = await hv.since(mark);
    expect(calls(reqs, 'Remove', anon2)).toHaveLength(1);
    expect(calls(reqs, 'Remove', named)).toHaveLength(0);
    const rows = await volumeRows(s.engine);
    expect(rows).toContain(`${DRIVER} ${named}`);
    expect(rows.some((r) => r.endsWith(anon2))).toBe(false);
    expect(fs.existsSync(path.join(hv.dataRoot, anon2))).toBe(false);
    expect(fs.readFileSync(path.join(hv.dataRoot, named, 'f'), 'utf8')).toBe('n\n');
    await s.docker(['volume', 'rm', named]);
  });

  s.scenario('9. two containers share a volume; stopping one leaves the other working; rm refused while in use', async () => {
    const { hv } = s;
    const v = uniq('shared');
    const [c1, c2] = [`${v}-1`, `${v}-2`];
    await s.docker(['volume', 'create', '-d', DRIVER, v]);
    await s.docker(['run', '-d', ...RUN, '--name', c1, '-v', `${v}:/d`, BB_IMAGE, ...IDLE]);
    await s.docker(['run', '-d', ...RUN, '--name', c2, '-v', `${v}:/d`, BB_IMAGE, ...IDLE]);
    await exec(c1, 'echo one > /d/one');
    expect((await exec(c2, 'cat /d/one && echo two > /d/two')).stdout).toBe('one\n');
    expect((await exec(c1, 'cat /d/two')).stdout).toBe('two\n');
    expect((await inspectVolume(s.engine, v)).Status.mounts).toBe(2);

    const mark = await hv.mark();
    const busy = await s.docker(['volume', 'rm', v], { allowFail: true });
    expect(busy.code).not.toBe(0);
    expect(busy.stderr).toMatch(/in use/);
    expect(calls(await hv.since(mark), 'Remove', v)).toHaveLength(0); // dockerd refuses by itself
    // hostvol refuses too when asked directly (other hosts, lost references)
    expect((await hv.call('/VolumeDriver.Remove', { Name: v })).Err).toBe(`volume "${v}" is in use by 2 mount(s) and a container still has it mounted; stop the containers using it first`);

    await s.docker(['stop', c1]);
    expect((await exec(c2, 'echo three > /d/three && cat /d/one /d/three')).stdout).toBe('one\nthree\n');
    expect((await inspectVolume(s.engine, v)).Status.mounts).toBe(1);
    expect((await s.docker(['volume', 'rm', v], { allowFail: true })).code).not.toBe(0); // stopped c1 still refers to it
    await s.docker(['rm', c1]);
    expect((await s.docker(['volume', 'rm', v], { allowFail: true })).stderr).toMatch(/in use/);
    await s.docker(['rm', '-f', c2]);
    expect((await inspectVolume(s.engine, v)).Status.mounts).toBe(0);
    await s.docker(['volume', 'rm', v]);
    expect(fs.existsSync(path.join(hv.dataRoot, v))).toBe(false);
  });

  s.scenario('10. -o Z: a second concurrent container fails with hostvol\'s message; after the first stops it starts', async () => {
    const { hv } = s;
    const v = uniq('single');
    const [c1, c2] = [`${v}-1`, `${v}-2`];
    await s.docker(['volume', 'create', '-d', DRIVER, '-o', 'Z', v]);
    expect((await inspectVolume(s.engine, v)).Status.label).toBe('Z');
    await s.docker(['run', '-d', ...RUN, '--name', c1, '-v', `${v}:/d`, BB_IMAGE, ...IDLE]);
    await exec(c1, 'echo first > /d/f');
    const mark = await hv.mark();
    const second = await s.docker(['run', '-d', ...RUN, '--name', c2, '-v', `${v}:/d`, BB_IMAGE, ...IDLE], { allowFail: true });
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(/Z|in use|single-writer/);
    expect(second.stderr).toContain(v);
    const failed = calls(await hv.since(mark), 'Mount', v);
    expect(failed).toHaveLength(1);
    expect(failed[0].reply.Err).toBeTruthy();
    expect((await inspectContainer(s.engine, c2)).State.Running).toBe(false);
    expect((await exec(c1, 'cat /d/f')).stdout).toBe('first\n'); // the holder is unaffected

    await s.docker(['stop', c1]);
    await s.docker(['start', c2]);
    expect((await exec(c2, 'cat /d/f && echo second > /d/f2')).stdout).toBe('first\n');
    expect(fs.readFileSync(path.join(hv.dataRoot, v, 'f2'), 'utf8')).toBe('second\n');
    // now c1 is the one that cannot start
    const again = await s.docker(['start', c1], { allowFail: true });
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain(v);
    await s.docker(['rm', '-f', c1, c2]);
    await s.docker(['volume', 'rm', v]);
  });
});
