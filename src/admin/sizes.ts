// Sizes of volumes and free space of the file systems they live on: what `docker system df -v` leaves
// out for plugin volumes. Each tree is walked by fd (measureTree: no symlink followed, no other mount
// entered, hard links counted once) with async system calls, so the event loop keeps serving meanwhile.
import * as fs from 'node:fs';
import { describe } from '../errors';
import { measureTree } from '../host/tree';
import { openDirectory } from '../volumes/directory';
import type { Driver } from '../volumes/driver';
import type { Volume } from '../volumes/volume';

export interface Size {
  /** Disk usage (allocated blocks), apparent size (sum of file sizes) and inodes. */
  bytes: number;
  apparentBytes: number;
  inodes: number;
}

export interface VolumeSize extends Partial<Size> {
  name: string;
  path: string;
  /** Device of the volume's directory: volumes on one file system share its free space. */
  dev?: number;
  /** Why the volume could not be measured (its directory is gone, …). */
  error?: string;
}

export interface FilesystemSpace {
  dev: number;
  /** One volume directory on it, to show where it is. */
  path: string;
  volumes: number;
  freeBytes: number;
  totalBytes: number;
  freeInodes: number;
  totalInodes: number;
}

export interface DiskUsage {
  volumes: VolumeSize[];
  total: Size;
  filesystems: FilesystemSpace[];
}

export async function measureVolume(driver: Driver, v: Volume): Promise<VolumeSize> {
  let dir;
  try {
    dir = await openDirectory(v, driver.deps.confinement);
  } catch (err) {
    return { name: v.name, path: v.path, error: describe(err) };
  }
  try {
    const dev = (await dir.stat()).dev;
    return { name: v.name, path: v.path, dev, ...(await measureTree(dir)) };
  } catch (err) {
    return { name: v.name, path: v.path, error: describe(err) };
  } finally {
    await dir.close();
  }
}

/** Trees walked at once: each walk keeps a few system calls in flight already; more would only queue. */
const WIDTH = 4;

export async function diskUsage(driver: Driver, names?: string[]): Promise<DiskUsage> {
  const all = [...driver.volumes.values()].filter((v) => v.state !== 'creating' && (!names || names.includes(v.name)));
  const sizes: VolumeSize[] = new Array(all.length);
  let next = 0;
  const lane = async () => {
    while (next < all.length) {
      const i = next++;
      sizes[i] = await measureVolume(driver, all[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(WIDTH, all.length) }, lane));
  // Sorted before grouping, so each file system is named after its first volume by name: the same
  // answer the CLI rebuilds from batches of names when it shows progress (commands/df.ts).
  sizes.sort((a, b) => a.name.localeCompare(b.name));
  const total: Size = { bytes: 0, apparentBytes: 0, inodes: 0 };
  const byDev = new Map<number, VolumeSize[]>();
  for (const s of sizes) {
    total.bytes += s.bytes ?? 0;
    total.apparentBytes += s.apparentBytes ?? 0;
    total.inodes += s.inodes ?? 0;
    if (s.dev !== undefined) byDev.set(s.dev, [...(byDev.get(s.dev) ?? []), s]);
  }
  const filesystems: FilesystemSpace[] = [];
  for (const [dev, vols] of byDev) {
    const st = await fs.promises.statfs(vols[0].path).catch(() => undefined);
    if (!st) continue;
    filesystems.push({
      dev, path: vols[0].path, volumes: vols.length,
      freeBytes: st.bavail * st.bsize, totalBytes: st.blocks * st.bsize, freeInodes: st.ffree, totalInodes: st.files,
    });
  }
  return { volumes: sizes, total, filesystems };
}
