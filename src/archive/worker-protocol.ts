// What the main thread and an archive worker (worker-main.ts) send each other.

export type Job =
  | { op: 'export'; root: string; ctl: SharedArrayBuffer }
  | { op: 'extract'; root: string }
  | { op: 'clone'; src: string; dst: string }
  | { op: 'exchange'; dir: string; a: Buffer; b: Buffer };

export type FromWorker =
  | { t: 'chunk'; buf: ArrayBuffer }
  | { t: 'ack' }
  | { t: 'done'; entries: number; bytes: number; warnings: string[] }
  | { t: 'error'; message: string; archive: boolean; code?: string };

export type ToWorker = { t: 'data'; buf: Uint8Array } | { t: 'end' };

/** Chunks the export worker may have posted that the reader has not yet taken. */
export const AHEAD = 8;
/** ctl[0]: chunks in flight; ctl[1]: 1 when the reader gave up. */
export const IN_FLIGHT = 0;
export const CANCELLED = 1;
