// A managed plugin serves only the store it served before (src/store/identity.ts): started on another
// store, or on an empty state directory, while HOSTVOL_STATE_SOURCE is unchanged (what a `docker plugin
// upgrade` that reset `state.source` looks like), it still answers every call, each with an Err that
// names the `docker plugin set` restoring it, and creates nothing in the wrong directory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLAIM_FILE, STORE_ID_FILE } from '../../src/store/identity';
import { destroy, isRoot, sandbox, type Sandbox } from './support';

const maybe = isRoot ? test : test.skip;
jest.setTimeout(30_000);

let sb: Sandbox | undefined;
afterEach(async () => {
  if (sb) await destroy(sb);
  sb = undefined;
});

/** A managed-mode sandbox whose state mount's host source is called `source` by the operator. */
async function managed(): Promise<Sandbox> {
  const s = await sandbox({ propagatedMount: '/placeholder' });
  await s.stop();
  s.config.propagatedMount = path.join(s.dir, 'prop');
  s.config.stateSource = '/srv/big/hostvol';
  await s.restart();
  return s;
}
const claim = (s: Sandbox) => JSON.parse(fs.readFileSync(path.join(s.config.propagatedMount!, CLAIM_FILE), 'utf8'));
const storeId = (dir: string) => fs.readFileSync(path.join(dir, STORE_ID_FILE), 'utf8').trim();
/** Restart with another directory as the state mount (what dockerd does after an upgrade). */
async function restartOn(s: Sandbox, stateDir: string, stateSource = s.config.stateSource): Promise<void> {
  await s.stop();
  s.config.stateDir = stateDir;
  s.config.dataRoot = path.join(stateDir, 'volumes');
  s.config.stateSource = stateSource;
  await s.restart();
}
const FIX = /Restore it with: docker plugin disable -f hostvol && docker plugin set hostvol state\.source=\/srv\/big\/hostvol && docker plugin enable hostvol/;

describe('store identity', () => {
  maybe('a first start gives the store an id and the plugin instance a claim on it', async () => {
    sb = await managed();
    expect(storeId(sb.config.stateDir)).toMatch(/^[0-9a-f]{32}$/);
    expect(claim(sb)).toEqual({ storeId: storeId(sb.config.stateDir), stateSource: '/srv/big/hostvol' });
  });

  maybe('started on an empty state directory: every call is refused with the fix, and nothing is created there', async () => {
    sb = await managed();
    expect(await sb.call('/VolumeDriver.Create', { Name: 'v1' })).toEqual({});
    const empty = path.join(sb.dir, 'default-state');
    fs.mkdirSync(empty);
    await restartOn(sb, empty);
    for (const [route, body] of [['List', {}], ['Create', { Name: 'v2' }], ['Mount', { Name: 'v1', ID: 'x' }], ['Remove', { Name: 'v1' }], ['Unmount', { Name: 'v1', ID: 'x' }]] as const) {
      const r = await sb.call(`/VolumeDriver.${route}`, body);
      expect(r.Err).toMatch(/hostvol was started on a different store: its state mount \(.* in the plugin\) holds no store/);
      expect(r.Err).toMatch(FIX);
    }
    // Get must not fail: dockerd would forget the volume (its driver, labels, options) for good.
    const get = await sb.call('/VolumeDriver.Get', { Name: 'v1' });
    expect(get).toEqual({ Volume: { Name: 'v1', Mountpoint: path.join(sb.config.propagatedMount!, 'v1'), Status: { refused: expect.stringMatching(FIX) } } });
    expect(await sb.call('/VolumeDriver.Capabilities', {})).toEqual({ Capabilities: { Scope: 'local' } });
    expect(fs.readdirSync(empty)).toEqual([]);
  });

  maybe('started on another store: refused, naming both ids; the set it names brings the volumes back', async () => {
    sb = await managed();
    const home = sb.config.stateDir;
    expect(await sb.call('/VolumeDriver.Create', { Name: 'v1' })).toEqual({});
    const other = path.join(sb.dir, 'other-state');
    await restartOn(sb, other, '/srv/other'); // the operator moves the store on purpose: accepted
    expect((await sb.call('/VolumeDriver.List', {})).Volumes).toEqual([]);
    await restartOn(sb, home, '/srv/other'); // mount source back to the old one, setting unchanged: refused
    const r = await sb.call('/VolumeDriver.Mount', { Name: 'v1', ID: 'x' });
    expect(r.Err).toContain(`holds another store (id ${storeId(home)})`);
    expect(r.Err).toContain(`volumes are in store ${storeId(other)} at host directory /srv/other`);
    await restartOn(sb, other, '/srv/other');
    expect(await sb.call('/VolumeDriver.Get', { Name: 'v1' })).toHaveProperty('Err');
    expect((await sb.call('/VolumeDriver.List', {})).Volumes).toEqual([]);
    await restartOn(sb, home, '/srv/big/hostvol');
    expect((await sb.call('/VolumeDriver.List', {})).Volumes).toEqual([expect.objectContaining({ Name: 'v1' })]);
  });

  maybe('a host service (no propagated mount) never refuses: it has no plugin instance to remember a store', async () => {
    sb = await sandbox();
    expect(await sb.call('/VolumeDriver.Create', { Name: 'v1' })).toEqual({});
    const first = storeId(sb.config.stateDir);
    await restartOn(sb, path.join(sb.dir, 'elsewhere'));
    expect((await sb.call('/VolumeDriver.List', {})).Volumes).toEqual([]);
    expect(storeId(sb.config.stateDir)).not.toBe(first);
  });
});
