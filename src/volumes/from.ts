// `-o from=SRC`: a new volume filled with a copy of another hostvol volume's tree.
import type { Labeler } from '../host/labels';
import type { Confinement } from '../host/paths';
import { cloneTree } from '../archive/clone';
import { InvalidOptionError } from '../errors';
import { prepareDirectory } from './directory';
import type { Volume } from './volume';

/**
 * SRC's tree is copied into the new volume's (empty) directory before it is 'ready', so no container
 * ever sees it half-filled; then the new volume's own options (owner, mode, label) are applied again
 * over what was copied. A copy of a volume in use is of whatever is there: `hostvol clone --pause`
 * pauses its writers first.
 */
export async function copyFrom(v: Volume, src: Volume | undefined, deps: { confinement: Confinement; labeler: Labeler }): Promise<void> {
  const from = v.options.from!;
  if (from === v.name || !src || src.state !== 'ready') {
    throw new InvalidOptionError(`volume "${v.name}": option from names "${from}", which is not ${from === v.name ? 'another' : 'a ready hostvol'} volume`);
  }
  await cloneTree(src.path, v.path, { what: `volume "${v.name}"` });
  await prepareDirectory(v, deps.confinement, deps.labeler);
}
