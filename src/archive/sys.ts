// The libc calls an archive worker needs and Node lacks (SEEK_DATA/SEEK_HOLE, extended attributes,
// mknodat, the *at calls with AT_SYMLINK_NOFOLLOW, utimensat with nanoseconds), made
// synchronously through koffi. Only archive workers load this: a synchronous call blocks its thread,
// which is the point there (no thread-pool round trip per file) and would be a fault on the main
// thread. errno is read right after each call, on the same thread.
/* eslint-disable @typescript-eslint/no-require-imports */
import * as os from 'node:os';

export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
export const AT_SYMLINK_NOFOLLOW = 0x100;
const O_CLOEXEC = 0o2000000; // Node opens everything close-on-exec; a raw openat must ask
const ENODATA = 61;
const ERANGE = 34;
const ENXIO = 6;

/** A failed call, with the errno name as Node's own fs errors carry it. */
export class SysError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const codes: Record<number, string> = {};
for (const [name, n] of Object.entries(os.constants.errno as Record<string, number>)) codes[n] ??= name;

type Fn = (...args: unknown[]) => number | bigint;
let c: { func(proto: string): Fn } | undefined;
let koffiErrno: () => number;

const PROTOS = {
  lseek: 'int64_t lseek(int, int64_t, int)',
  flistxattr: 'intptr_t flistxattr(int, char*, size_t)',
  fgetxattr: 'intptr_t fgetxattr(int, const char*, void*, size_t)',
  fsetxattr: 'int fsetxattr(int, const char*, const void*, size_t, int)',
  llistxattr: 'intptr_t llistxattr(const char*, char*, size_t)',
  lgetxattr: 'intptr_t lgetxattr(const char*, const char*, void*, size_t)',
  lsetxattr: 'int lsetxattr(const char*, const char*, const void*, size_t, int)',
  mknodat: 'int mknodat(int, const char*, uint32_t, uint64_t)',
  fchownat: 'int fchownat(int, const char*, uint32_t, uint32_t, int)',
  fchmodat: 'int fchmodat(int, const char*, uint32_t, int)',
  utimensat: 'int utimensat(int, const char*, const void*, int)',
  futimens: 'int futimens(int, const void*)',
  openat: 'int openat(int, const char*, int, uint32_t)',
  close: 'int close(int)',
};
const fns: Partial<Record<keyof typeof PROTOS, Fn>> = {};

/**
 * Each function is declared on its first call: an export needs two or three of these, and declaring
 * them all up front was a visible part of every archive worker's start (--cpu-prof of an empty export).
 */
function lib(name: keyof typeof PROTOS): Fn {
  if (!c) {
    const koffi = require('koffi');
    c = koffi.load('libc.so.6');
    koffiErrno = () => koffi.errno();
  }
  return (fns[name] ??= c!.func(PROTOS[name]));
}

/** Loads libc and declares `names` now, ahead of the first call (while a worker waits for its input). */
export function declare(...names: (keyof typeof PROTOS)[]): void {
  for (const n of names) lib(n);
}

/** What a call was about, for its error: a thunk where naming it costs more than the call (per file in a walk). */
export type What = string | (() => string);

function fail(call: string, what: What): never {
  const e = koffiErrno();
  const code = codes[e] ?? `E${e}`;
  throw new SysError(code, `${call} ${typeof what === 'string' ? what : what()}: ${code}`);
}

const cstr = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc(1)]);
// A NUL-terminated copy of a name in memory reused from call to call: the call is synchronous and
// only reads it, and an export opens every file of the tree by name.
const nameScratch = Buffer.allocUnsafe(4096);
function cname(b: Buffer): Buffer {
  if (b.length >= nameScratch.length) return cstr(b);
  b.copy(nameScratch);
  nameScratch[b.length] = 0;
  return nameScratch;
}

/** The next offset >= `from` holding data (SEEK_DATA) or a hole (SEEK_HOLE); -1 past the last data. */
export function seek(fd: number, from: number, whence: number, what: string): number {
  const r = Number(lib('lseek')(fd, BigInt(from), whence));
  if (r < 0) {
    if (koffiErrno() === ENXIO) return -1;
    fail('lseek', what);
  }
  return r;
}

/** Attribute names, on an open fd (fd >= 0) or on the entry at `p` itself (never followed). */
// Reused for every entry: most have no xattrs, and a zeroed 4 KiB per call showed in profiles.
const scratch = Buffer.allocUnsafe(64 * 1024);

export function listXattrs(fd: number, p: Buffer | null, what: What): string[] {
  for (let size = scratch.length; ; size *= 4) {
    const buf = size === scratch.length ? scratch : Buffer.allocUnsafe(size);
    const n = Number(fd >= 0 ? lib('flistxattr')(fd, buf, size) : lib('llistxattr')(cstr(p!), buf, size));
    if (n === 0) return []; // most entries
    if (n > 0) return buf.subarray(0, n).toString('latin1').split('\0').filter(Boolean);
    if (koffiErrno() === 95) return []; // EOPNOTSUPP: a file system without xattrs has none to keep
    if (koffiErrno() !== ERANGE || size > 1 << 20) fail('listxattr', what);
  }
}

/** The attribute's value, or null when it vanished since it was listed. */
export function getXattr(fd: number, p: Buffer | null, name: string, what: What): Buffer | null {
  const key = Buffer.from(`${name}\0`, 'latin1');
  for (let size = scratch.length; ; size *= 4) {
    const buf = size === scratch.length ? scratch : Buffer.allocUnsafe(size);
    const n = Number(fd >= 0 ? lib('fgetxattr')(fd, key, buf, size) : lib('lgetxattr')(cstr(p!), key, buf, size));
    if (n >= 0) return Buffer.from(buf.subarray(0, n));
    if (koffiErrno() === ENODATA) return null;
    if (koffiErrno() !== ERANGE || size > 1 << 20) fail(`getxattr ${name}`, what);
  }
}

export function setXattr(fd: number, p: Buffer | null, name: string, value: Buffer, what: What): void {
  const key = Buffer.from(`${name}\0`, 'latin1');
  const r = fd >= 0 ? lib('fsetxattr')(fd, key, value, value.length, 0) : lib('lsetxattr')(cstr(p!), key, value, value.length, 0);
  if (Number(r) < 0) fail(`setxattr ${name}`, what);
}

export function mknodAt(dirfd: number, name: Buffer, mode: number, dev: bigint, what: What): void {
  if (Number(lib('mknodat')(dirfd, cstr(name), mode, dev)) < 0) fail('mknod', what);
}

/** lchown of `name` in `dirfd` (the entry itself, a symlink is not followed). */
export function chownAt(dirfd: number, name: Buffer, uid: number, gid: number, what: What): void {
  if (Number(lib('fchownat')(dirfd, cstr(name), uid, gid, AT_SYMLINK_NOFOLLOW)) < 0) fail('chown', what);
}

/** chmod of `name` in `dirfd`; callers use it only on entries they just made that are not symlinks. */
export function chmodAt(dirfd: number, name: Buffer, mode: number, what: What): void {
  if (Number(lib('fchmodat')(dirfd, cstr(name), mode, 0)) < 0) fail('chmod', what);
}

function times(ns: bigint): Buffer {
  // struct timespec[2] on x86_64 / aarch64: {int64 tv_sec; int64 tv_nsec} for atime, then mtime.
  const b = Buffer.alloc(32);
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  for (const at of [0, 16]) {
    b.writeBigInt64LE(sec, at);
    b.writeBigInt64LE(nsec, at + 8);
  }
  return b;
}

/** Sets atime and mtime to `ns` (nanoseconds since the epoch) on `name` in `dirfd`, not followed. */
export function setTimesAt(dirfd: number, name: Buffer, ns: bigint, what: What): void {
  if (Number(lib('utimensat')(dirfd, cstr(name), times(ns), AT_SYMLINK_NOFOLLOW)) < 0) fail('utimensat', what);
}

export function setTimes(fd: number, ns: bigint, what: What): void {
  if (Number(lib('futimens')(fd, times(ns))) < 0) fail('futimens', what);
}

/**
 * openat(2) on a real directory fd: one lookup of `name`, where a path through /proc/self/fd/<fd>/
 * also walks procfs and its magic link on every call. The fd is not Node's: close it with closeFd
 * (Node warns when fs.closeSync closes an fd it did not open).
 */
export function openAt(dirfd: number, name: Buffer, flags: number, mode: number, what: What): number {
  const fd = Number(lib('openat')(dirfd, cname(name), flags | O_CLOEXEC, mode));
  if (fd < 0) fail('open', what);
  return fd;
}

export function closeFd(fd: number): void {
  lib('close')(fd);
}
