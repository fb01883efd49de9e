// What the main thread and an archive worker (worker-main.ts) send each other.

export type Job =
  | { op: 'export'; root: string; ctl: SharedArrayBuffer; ring: SharedArrayBuffer }
  | { op: 'extract'; ring: SharedArrayBuffer }
  | { op: 'clone'; src: string; dst: string };

export type FromWorker =
  | { t: 'chunk'; slot: number; len: number }
  | { t: 'ack' }
  | { t: 'done'; entries: number; bytes: number; warnings: string[] }
  | { t: 'error'; message: string; archive: boolean; code?: string };

/**
 * Extract input: first the directory to fill (the worker starts before it exists), then `len` bytes
 * in slot `slot` of the job's ring (CHUNK bytes a slot), each acknowledged once used.
 */
export type ToWorker = { t: 'root'; root: string } | { t: 'data'; slot: number; len: number } | { t: 'end' };

/** Slots of the export ring (CHUNK bytes each): chunks the worker may be ahead of the reader. */
export const SLOTS = 8;
/**
 * Slots of the import ring: chunks the reader may be ahead of the extract worker. Deeper than the
 * export's because the two stages stall in turn, at about the same mean rate: the worker on each file
 * create, the reader on its pipe or socket, which fills only while it is read. With a shallow ring
 * each waits for the other, and the import runs near the sum of the two instead of the slower one.
 * 32 MiB per running import.
 */
export const EXTRACT_SLOTS = 32;
/** ctl[0]: chunks in flight; ctl[1]: 1 when the reader gave up. */
export const IN_FLIGHT = 0;
export const CANCELLED = 1;
