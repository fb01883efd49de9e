// What the main thread and an archive worker (worker-main.ts) send each other.

export type Job =
  | { op: 'export'; root: string; ctl: SharedArrayBuffer; ring: SharedArrayBuffer }
  | { op: 'extract'; root: string; ring: SharedArrayBuffer }
  | { op: 'clone'; src: string; dst: string }
  | { op: 'exchange'; dir: string; a: Buffer; b: Buffer };

export type FromWorker =
  | { t: 'chunk'; slot: number; len: number }
  | { t: 'ack' }
  | { t: 'done'; entries: number; bytes: number; warnings: string[] }
  | { t: 'error'; message: string; archive: boolean; code?: string };

/** Extract input: `len` bytes in slot `slot` of the job's ring (CHUNK bytes a slot), acknowledged once used. */
export type ToWorker = { t: 'data'; slot: number; len: number } | { t: 'end' };

/** Slots of the export ring (CHUNK bytes each): chunks the worker may be ahead of the reader. */
export const SLOTS = 8;
/** ctl[0]: chunks in flight; ctl[1]: 1 when the reader gave up. */
export const IN_FLIGHT = 0;
export const CANCELLED = 1;
