// Which store this is, and whether this plugin instance may serve it.
//
// A managed plugin sees its store only through the `state` mount, whose host source dockerd may change
// under it: `docker plugin upgrade` on dockerd 20.10 starts the new version with config.json's default
// mount sources (the operator's `state.source` is shown but not used), while env settings such as
// HOSTVOL_STATE_SOURCE are kept. Started that way, hostvol would open another (or a new, empty) store and
// serve none of the volumes dockerd knows. So each store carries a random id (`store-id` in the state
// directory), and each plugin instance remembers which store it served in a claim file in its propagated
// mount (`<data-root>/plugins/<id>/propagated-mount` on the host): dockerd keeps that directory across
// disable, enable and upgrade, and deletes it only with the plugin (`docker plugin rm`). A claim for
// another store, with HOSTVOL_STATE_SOURCE unchanged, means the mount source moved without the operator
// saying so: refuse, and name the `docker plugin set` that restores it. A changed HOSTVOL_STATE_SOURCE is
// the operator moving the store on purpose, and a plugin without a claim is a new install: both accepted.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HostvolError, describe } from '../errors';

/** In the state directory, beside hostvol.db: the store's id, one line of hex. */
export const STORE_ID_FILE = 'store-id';
/** In the propagated mount: which store this plugin instance serves. A volume name cannot start with '.'. */
export const CLAIM_FILE = '.hostvol-store';
const STORE_FILE = 'hostvol.db';

export interface Claim {
  storeId: string;
  /** HOSTVOL_STATE_SOURCE when the claim was written: the host directory the operator said holds the store. */
  stateSource: string;
}

/** What the state directory holds: a store with its id, a store from before ids existed, or nothing yet. */
export type Found = { kind: 'store'; id: string } | { kind: 'unidentified' } | { kind: 'none' };

/** The plugin was started on another store than the one its volumes live in. */
export class StoreMismatchError extends HostvolError {
  override name = 'StoreMismatchError';
}

/** Reads what the state directory holds, creating nothing (a refused start must leave it as it was). */
export function findStore(stateDir: string): Found {
  const idFile = path.join(stateDir, STORE_ID_FILE);
  try {
    const id = fs.readFileSync(idFile, 'utf8').trim();
    if (!/^[0-9a-f]{32}$/.test(id)) throw new HostvolError(`${idFile} does not hold a store id (32 hex digits); restore it from a backup of the state directory`);
    return { kind: 'store', id };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return fs.existsSync(path.join(stateDir, STORE_FILE)) ? { kind: 'unidentified' } : { kind: 'none' };
}

export function readClaim(file: string): Claim | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new HostvolError(`cannot read ${file} (which store this plugin serves): ${describe(err)}`);
  }
  let c: Partial<Claim> = {};
  try {
    c = JSON.parse(text) as Partial<Claim>;
  } catch {
    /* reported below */
  }
  if (typeof c?.storeId !== 'string' || typeof c?.stateSource !== 'string') {
    throw new HostvolError(`${file} is not a store claim; delete it (this plugin then serves whatever store its state mount holds)`);
  }
  return { storeId: c.storeId, stateSource: c.stateSource };
}

/**
 * Throws StoreMismatchError when this plugin instance served another store than the one in `found` and
 * the operator did not change HOSTVOL_STATE_SOURCE (`stateSource`) since; otherwise returns.
 */
export function checkClaim(claim: Claim | undefined, found: Found, stateSource: string, stateDir: string): void {
  if (!claim || claim.stateSource !== stateSource) return;
  if (found.kind === 'store' && found.id === claim.storeId) return;
  const holds = found.kind === 'store' ? `another store (id ${found.id})` : found.kind === 'none' ? 'no store' : 'a store without an id';
  throw new StoreMismatchError(
    `hostvol was started on a different store: its state mount (${stateDir} in the plugin) holds ${holds}, but this plugin's ` +
      `volumes are in store ${claim.storeId} at host directory ${claim.stateSource} (HOSTVOL_STATE_SOURCE). ` +
      '`docker plugin upgrade` puts mount sources back to their defaults. Restore it with: ' +
      `docker plugin disable -f hostvol && docker plugin set hostvol state.source=${claim.stateSource} && docker plugin enable hostvol ` +
      '(to serve the store now mounted instead, set HOSTVOL_STATE_SOURCE to its host directory)',
  );
}

/** The store's id, given to it now if it has none yet (a new store, or one made before ids existed). */
export function ensureStoreId(stateDir: string): string {
  const found = findStore(stateDir);
  if (found.kind === 'store') return found.id;
  const id = randomBytes(16).toString('hex');
  writeDurably(path.join(stateDir, STORE_ID_FILE), `${id}\n`);
  return id;
}

export function writeClaim(file: string, claim: Claim): void {
  const prev = readClaim(file);
  if (prev && prev.storeId === claim.storeId && prev.stateSource === claim.stateSource) return;
  writeDurably(file, `${JSON.stringify(claim)}\n`);
}

/** Whole or not at all, and still there after a power cut: temp file, fsync, rename, fsync the directory. */
function writeDurably(file: string, content: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeFileSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  const dir = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
}
