// Driver options (`docker volume create -o k=v`, `--mount …,volume-opt=k=v`): the allow-list, how
// each value is parsed, and the conflict rules. Everything is driven by the `keys` table below.
import { InvalidOptionError } from '../errors';

/** A lone UTF-16 surrogate: SQLite stores it as invalid UTF-8 and reads back U+FFFD, a different string. */
export const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export type Label = 'z' | 'Z';
export type OnRemove = 'keep' | 'delete';

/** The canonical, validated form of a volume's options; two Creates are "the same" when equal. */
export interface VolumeOptions {
  path?: string;
  uid?: number;
  gid?: number;
  mode?: number;
  readOnly: boolean;
  label?: Label;
  onRemove?: OnRemove;
  /** Another hostvol volume whose content Create copies into this one (`hostvol clone`). */
  from?: string;
}

type Flag = 'ro' | 'rw' | 'z' | 'Z';
interface Draft {
  path?: string;
  uid?: number;
  gid?: number;
  mode?: number;
  onRemove?: OnRemove;
  from?: string;
  flags: Partial<Record<Flag, boolean>>;
}

const FLAGS: readonly Flag[] = ['ro', 'rw', 'z', 'Z'];
const MAX_ID = 4294967294; // (uid_t)-1 means "unchanged" to chown(2), so it is not a valid owner.

const keys: Record<string, { help: string; apply(d: Draft, value: string, fail: Fail): void }> = {
  path: { help: 'absolute host directory, e.g. path=/srv/data/web', apply: setPath },
  // Alias used by local-persist, so people moving from it keep their -o flags.
  mountpoint: { help: 'alias of path', apply: setPath },
  uid: { help: 'owner user id, e.g. uid=1000', apply: (d, v, f) => (d.uid = id('uid', v, f)) },
  gid: { help: 'owner group id, e.g. gid=1000', apply: (d, v, f) => (d.gid = id('gid', v, f)) },
  mode: { help: 'octal permissions, e.g. mode=0750', apply: (d, v, f) => (d.mode = octal(v, f)) },
  ro: { help: 'read-only for every container (ro, ro=true|false)', apply: flag('ro') },
  rw: { help: 'read-write, the default (rw, rw=true|false)', apply: flag('rw') },
  z: { help: 'SELinux shared label (z)', apply: flag('z') },
  Z: { help: 'SELinux private label, single writer (Z)', apply: flag('Z') },
  o: { help: 'comma list of ro, rw, z, Z, e.g. o=ro,Z', apply: modeList },
  onremove: { help: 'keep or delete the data on volume rm', apply: setOnRemove },
  from: { help: 'copy the content of another hostvol volume at create, e.g. from=web-data', apply: setFrom },
};
export const OPTION_KEYS = Object.keys(keys);

type Fail = (msg: string) => never;

/** Parses dockerd's Opts map (null, {} or populated) into canonical options, or throws naming the problem. */
export function parseOptions(volume: string, opts: Record<string, string> | null | undefined): VolumeOptions {
  const fail: Fail = (msg) => {
    throw new InvalidOptionError(`volume "${volume}": ${msg}`);
  };
  const draft: Draft = { flags: {} };
  const entries = Object.entries(opts ?? {});
  // All of them at once: fixing one typo only to be told of the next wastes the operator's time.
  const unknown = entries.map(([k]) => k).filter((k) => !Object.hasOwn(keys, k));
  if (unknown.length > 0) {
    const named = unknown.slice(0, 8).map((k) => `"${clip(k)}"`).join(', ') + (unknown.length > 8 ? ` and ${unknown.length - 8} more` : '');
    fail(`unknown option${unknown.length > 1 ? 's' : ''} ${named}; valid options are: ${OPTION_KEYS.join(', ')}`);
  }
  for (const [key, value] of entries) keys[key].apply(draft, value, fail);
  return finish(draft, fail);
}

function finish(d: Draft, fail: Fail): VolumeOptions {
  const { ro, rw, z, Z } = d.flags;
  if (ro !== undefined && rw !== undefined && ro === rw) {
    fail('options ro and rw contradict each other; give only one of them');
  }
  if (z && Z) fail('options z and Z contradict each other; use z (shared) or Z (private), not both');
  const out: VolumeOptions = { readOnly: ro === true || rw === false };
  if (d.path !== undefined) out.path = d.path;
  if (d.uid !== undefined) out.uid = d.uid;
  if (d.gid !== undefined) out.gid = d.gid;
  if (d.mode !== undefined) out.mode = d.mode;
  if (Z) out.label = 'Z';
  else if (z) out.label = 'z';
  if (d.onRemove !== undefined) out.onRemove = d.onRemove;
  if (d.from !== undefined) out.from = d.from;
  return out;
}

function setPath(d: Draft, value: string, fail: Fail): void {
  if (!value.startsWith('/')) fail(`option path must be an absolute host directory, got "${clip(value)}"`);
  if (value.includes('\0')) fail('option path contains a NUL byte');
  if (value.length > 4095) fail('option path is longer than PATH_MAX (4095)');
  // The file system would store U+FFFD, so two different paths could name one directory.
  if (UNPAIRED_SURROGATE.test(value)) fail('option path is not valid Unicode (it has an unpaired surrogate)');
  if (value.split('/').some((c) => Buffer.byteLength(c) > 255)) fail('option path has a component longer than 255 bytes (NAME_MAX)');
  if (d.path !== undefined && d.path !== value) {
    fail('options path and mountpoint name the same setting; give only one of them');
  }
  d.path = value;
}

function setFrom(d: Draft, value: string, fail: Fail): void {
  // Docker's own volume-name rule: what a source volume can be called.
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(value)) fail(`option from must name a volume, got "${clip(value)}"`);
  d.from = value;
}

function id(key: string, value: string, fail: Fail): number {
  const n = /^\d{1,10}$/.test(value) ? Number(value) : NaN;
  if (!(n <= MAX_ID)) fail(`option ${key} must be a whole number from 0 to ${MAX_ID}, got "${clip(value)}"`);
  return n;
}

function octal(value: string, fail: Fail): number {
  if (!/^0?[0-7]{3,4}$/.test(value)) {
    fail(`option mode must be octal permissions such as 0750 or 755, got "${clip(value)}"`);
  }
  return parseInt(value, 8);
}

function flag(name: Flag) {
  return (d: Draft, value: string, fail: Fail): void => setFlag(d, name, bool(name, value, fail), fail);
}

function setFlag(d: Draft, name: Flag, value: boolean, fail: Fail): void {
  if (d.flags[name] !== undefined && d.flags[name] !== value) fail(`option ${name} is given twice with different values`);
  d.flags[name] = value;
}

function bool(name: string, value: string, fail: Fail): boolean {
  // `-o ro` without "=" arrives as "ro": "".
  if (value === '' || value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  return fail(`option ${name} takes true, false, 1 or 0 (or no value), got "${clip(value)}"`);
}

function modeList(d: Draft, value: string, fail: Fail): void {
  for (const item of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(FLAGS as readonly string[]).includes(item)) {
      fail(`option o has unknown flag "${clip(item)}"; valid flags are: ${FLAGS.join(', ')}`);
    }
    setFlag(d, item as Flag, true, fail);
  }
}

function setOnRemove(d: Draft, value: string, fail: Fail): void {
  if (value !== 'keep' && value !== 'delete') fail(`option onremove must be keep or delete, got "${clip(value)}"`);
  d.onRemove = value;
}

/** Hostile clients send huge or binary keys and values; echo only a readable prefix. */
function clip(s: string): string {
  const printable = JSON.stringify(s).slice(1, -1);
  return printable.length > 64 ? `${printable.slice(0, 64)}…` : printable;
}

/** Option help lines for the CLI and README. */
export function describeOptions(): string[] {
  return OPTION_KEYS.map((k) => `${k}: ${keys[k].help}`);
}

export function sameOptions(a: VolumeOptions, b: VolumeOptions): boolean {
  const norm = (o: VolumeOptions) => JSON.stringify(o, Object.keys(o).sort());
  return norm(a) === norm(b);
}
