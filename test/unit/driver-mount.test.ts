// Mount and Unmount with the embedded store: the lease commit and the bind (or its release) run side
// by side, and whichever of the two fails undoes the other, so a failed Mount leaves neither a bind
// nor a lease and a failed Unmount leaves the lease held. Real store, real bind mounts; the faults
// are injected by wrapping them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { createLabeler } from '../../src/host/labels';
import { systemMounter, type Mounter } from '../../src/host/mounter';
import { mountPoints } from '../../src/host/mountinfo';
import { Confinement } from '../../src/host/paths';
import { SqliteStore } from '../../src/store/sqlite';
import { readStore } from '../../src/store/sqlite-load';
import type { Store } from '../../src/store/store';
import { Driver } from '../../src/volumes/driver';

interface Rig {
  driver: Driver;
  store: SqliteStore;
  target: (name: string) => string;
  /** Leases as the store file holds them (read after closing the store). */
  close(): Promise<{ volume: string; id: string; count: number }[]>;
}

// Worker threads start and SQLite commits on a shared, loaded machine: generous, since a deadlock never ends anyway.
jest.setTimeout(60_000);

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) {
    // A test that failed half-way may have left a bind mount: never delete through one.
    for (const m of mountPoints().filter((p) => p.startsWith(`${d}/`))) await systemMounter.release(m);
    fs.rmSync(d, { recursive: true, force: true });
  }
});

/** A driver over a real SQLite store and the system mounter, each seen through `wrap`. */
async function rig(wrap: { store?: (s: Store) => Store; mounter?: (m: Mounter) => Mounter } = {}): Promise<Rig> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-mount-'));
  dirs.push(dir);
  const dataRoot = path.join(dir, 'data');
  const stateDir = path.join(dir, 'state');
  const mountsDir = path.join(stateDir, 'mounts');
  fs.mkdirSync(dataRoot);
  fs.mkdirSync(mountsDir, { recursive: true });
  const store = new SqliteStore(stateDir);
  const snapshot = await store.load();
  const driver = new Driver(
    {
      store: wrap.store ? wrap.store(store) : store,
      mounter: wrap.mounter ? wrap.mounter(systemMounter) : systemMounter,
      labeler: createLabeler('off'),
      log: pino({ level: 'silent' }),
      dataRoot,
      stateDir,
      mountsDir,
      confinement: await Confinement.create([dataRoot]),
      layout: { mountsDir, managed: false },
      bootId: 'boot-1',
      inUse: async () => false,
    },
    snapshot.generation,
  );
  return {
    driver,
    store,
    target: (name) => path.join(mountsDir, name),
    async close() {
      await driver.idle();
      for (const m of mountPoints().filter((p) => p.startsWith(`${mountsDir}/`))) await systemMounter.release(m);
      await store.close();
      return readStore(store.file).leases.map(({ volume, id, count }) => ({ volume, id, count }));
    },
  };
}

/** `store` with setLease failing while `failing()` says so (as a full disk would make it). */
function leaseFails(failing: () => boolean): (s: Store) => Store {
  return (s) =>
    new Proxy(s, {
      get(t, prop) {
        if (prop === 'setLease') {
          return (...a: Parameters<Store['setLease']>) => (failing() ? Promise.reject(new Error('disk full (injected)')) : t.setLease(...a));
        }
        const v = Reflect.get(t, prop, t);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
}

test('a Mount records its lease while the bind is being made, not after it', async () => {
  // The commit waits until the bind has started: done one after the other, this Mount never ends.
  let bindStarted!: () => void;
  const started = new Promise<void>((r) => (bindStarted = r));
  const r = await rig({
    store: (s) =>
      new Proxy(s, {
        get(t, prop) {
          if (prop === 'setLease') return async (...a: Parameters<Store['setLease']>) => (await started, t.setLease(...a));
          const v = Reflect.get(t, prop, t);
          return typeof v === 'function' ? v.bind(t) : v;
        },
      }),
    mounter: (m) => ({ ...m, bindBeneath: (...a) => (bindStarted(), m.bindBeneath(...a)) }),
  });
  await r.driver.create('side', null);
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('Mount waited for its commit before binding')), 20_000).unref());
  expect(await Promise.race([r.driver.mount('side', 'a'), timeout])).toBe(r.target('side'));
  expect(mountPoints()).toContain(r.target('side'));
  expect(await r.close()).toEqual([{ volume: 'side', id: 'a', count: 1 }]);
});

test('the last Unmount removes the bind while its release commits, not after it', async () => {
  // The release of the last lease waits until the bind is being removed: done one after the other, this Unmount never ends.
  let releaseStarted!: () => void;
  const started = new Promise<void>((r) => (releaseStarted = r));
  const r = await rig({
    store: (s) =>
      new Proxy(s, {
        get(t, prop) {
          if (prop === 'setLease') {
            return async (...a: Parameters<Store['setLease']>) => {
              if (a[0].count === 0) await started;
              return t.setLease(...a);
            };
          }
          const v = Reflect.get(t, prop, t);
          return typeof v === 'function' ? v.bind(t) : v;
        },
      }),
    mounter: (m) => ({ ...m, release: (target) => (releaseStarted(), m.release(target)) }),
  });
  await r.driver.create('both', null);
  await r.driver.mount('both', 'a');
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('Unmount waited for its commit before releasing the bind')), 20_000).unref());
  await Promise.race([r.driver.unmount('both', 'a'), timeout]);
  expect(mountPoints()).not.toContain(r.target('both'));
  expect(await r.close()).toEqual([]);
});

test('a Mount whose lease cannot be recorded fails and leaves no bind mount behind', async () => {
  let failing = false;
  const r = await rig({ store: leaseFails(() => failing) });
  await r.driver.create('nolease', null);
  failing = true;
  await expect(r.driver.mount('nolease', 'a')).rejects.toThrow(/disk full/);
  expect(mountPoints()).not.toContain(r.target('nolease'));
  expect(fs.existsSync(r.target('nolease'))).toBe(false);
  expect(r.driver.get('nolease').status).toMatchObject({ mounts: 0 });
  // Once the store takes writes again, the same Mount works.
  failing = false;
  expect(await r.driver.mount('nolease', 'a')).toBe(r.target('nolease'));
  expect(await r.close()).toEqual([{ volume: 'nolease', id: 'a', count: 1 }]);
});

test('a Mount whose bind fails gives its lease back', async () => {
  const r = await rig({ mounter: (m) => ({ ...m, bindBeneath: async () => Promise.reject(new Error('EPERM (injected)')) }) });
  await r.driver.create('nobind', null);
  await expect(r.driver.mount('nobind', 'a')).rejects.toThrow(/volume "nobind": mount failed: EPERM/);
  expect(r.driver.get('nobind').status).toMatchObject({ mounts: 0 });
  expect(await r.close()).toEqual([]);
});

test('an Unmount whose release cannot be recorded keeps the lease, and the next Mount of it binds again', async () => {
  let failing = false;
  const r = await rig({ store: leaseFails(() => failing) });
  await r.driver.create('keep', null);
  await r.driver.mount('keep', 'a');
  failing = true;
  await expect(r.driver.unmount('keep', 'a')).rejects.toThrow(/disk full/);
  expect(r.driver.get('keep').status).toMatchObject({ mounts: 1 });
  failing = false;
  // docker cp of the still-held ID: counted, and served by a bind again.
  expect(await r.driver.mount('keep', 'a')).toBe(r.target('keep'));
  expect(mountPoints()).toContain(r.target('keep'));
  await r.driver.unmount('keep', 'a');
  await r.driver.unmount('keep', 'a');
  expect(mountPoints()).not.toContain(r.target('keep'));
  expect(await r.close()).toEqual([]);
});
