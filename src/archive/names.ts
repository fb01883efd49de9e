// What a member name may be: a path relative to the volume, reached by descending only. Absolute
// names, '..' and NUL are refused outright (GNU tar strips a leading '/' and warns; an import into a
// volume has no reason to carry one, so it is an error that names the member).
import { PathError } from '../errors';
import { shownName } from '../host/tree-dir';

/** A refused or unreadable archive: says which member and why, so the operator can act on it. */
export class ArchiveError extends PathError {
  override name = 'ArchiveError';
}

/** The member's components, with '' and '.' dropped; [] is the root itself. */
export function memberComponents(raw: Buffer): Buffer[] {
  if (raw.includes(0)) throw new ArchiveError(`member "${shownName(raw)}" has a NUL byte in its name; refusing the archive`);
  if (raw[0] === 0x2f) throw new ArchiveError(`member "${shownName(raw)}" has an absolute name; refusing to write outside the volume`);
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= raw.length; i++) {
    if (i < raw.length && raw[i] !== 0x2f) continue;
    const c = raw.subarray(start, i);
    start = i + 1;
    if (c.length === 0 || (c.length === 1 && c[0] === 0x2e)) continue;
    if (c.length === 2 && c[0] === 0x2e && c[1] === 0x2e) {
      throw new ArchiveError(`member "${shownName(raw)}" has a '..' component; refusing to write outside the volume`);
    }
    out.push(c);
  }
  return out;
}

/** The member's path relative to the root, normalised ('./a//b/' is 'a/b'). */
export function memberPath(raw: Buffer): Buffer {
  const parts = memberComponents(raw);
  return parts.length === 0 ? Buffer.alloc(0) : Buffer.concat(parts.flatMap((p, i) => (i ? [SLASH, p] : [p])));
}

const SLASH = Buffer.from('/');

export const shown = (p: Buffer): string => (p.length ? shownName(p) : '.');
