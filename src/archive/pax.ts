// pax extended header records (POSIX.1-2001 `pax` format): "<len> <key>=<value>\n", where <len>
// counts the whole record including itself. Values are kept as bytes: a `path` is UTF-8 by the
// standard unless a `hdrcharset=BINARY` record says otherwise, and either way its bytes are the
// name's bytes, which is what a Linux name is.

export type Records = Map<string, Buffer>;

const NL = Buffer.from('\n');

/** One record; its length prefix counts its own digits, so grow it until it is consistent. */
export function record(key: string, value: Buffer | string): Buffer {
  const body = Buffer.byteLength(key) + (typeof value === 'string' ? Buffer.byteLength(value) : value.length) + 3; // ' ', '=', '\n'
  let len = body + String(body).length;
  if (String(len).length !== String(body).length) len = body + String(len).length;
  if (typeof value === 'string') return Buffer.from(`${len} ${key}=${value}\n`); // one allocation, the common case (mtime)
  return Buffer.concat([Buffer.from(`${len} ${key}=`), value, NL]);
}

/** Parses a whole extended header; a record that does not fit its own length is a malformed archive. */
export function parseRecords(data: Buffer, into: Records = new Map()): Records {
  let at = 0;
  while (at < data.length) {
    if (data[at] === 0) break; // padding some writers leave after the last record
    const space = data.indexOf(0x20, at);
    if (space < 0 || space - at > 12) throw new Error('malformed pax record (no length)');
    const len = Number(data.toString('latin1', at, space));
    if (!Number.isSafeInteger(len) || len < 5 || at + len > data.length || data[at + len - 1] !== 0x0a) {
      throw new Error(`malformed pax record (length ${data.toString('latin1', at, space)})`);
    }
    const eq = data.indexOf(0x3d, space);
    if (eq < 0 || eq >= at + len) throw new Error('malformed pax record (no "=")');
    into.set(data.toString('utf8', space + 1, eq), data.subarray(eq + 1, at + len - 1));
    at += len;
  }
  return into;
}

/** "sec[.frac]" as pax writes times, to nanoseconds (a leading '-' for times before 1970). */
export function parseTime(v: Buffer): bigint {
  const s = v.toString('latin1');
  const m = /^(-?)(\d{1,20})(?:\.(\d*))?$/.exec(s);
  if (!m) throw new Error(`malformed pax time "${s}"`);
  const frac = (m[3] ?? '').slice(0, 9).padEnd(9, '0');
  const ns = BigInt(m[2]) * 1_000_000_000n + BigInt(frac);
  return m[1] ? -ns : ns;
}

export function formatTime(ns: bigint): string {
  const neg = ns < 0n;
  const a = neg ? -ns : ns;
  const sec = a / 1_000_000_000n;
  const frac = (a % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${sec}${frac ? `.${frac}` : ''}`;
}

/** A decimal record value (size, uid, …) as a safe integer. */
export function parseNumber(key: string, v: Buffer): number {
  const s = v.toString('latin1');
  const n = Number(s);
  if (!/^\d{1,16}$/.test(s) || !Number.isSafeInteger(n)) throw new Error(`malformed pax ${key} "${s}"`);
  return n;
}
