// The fuzz group's request generators (fuzz.test.ts): well-shaped plugin calls with hostile values,
// arbitrary JSON and bytes, deep and huge bodies, odd headers and methods, and raw broken HTTP.
import * as path from 'node:path';
import fc from 'fast-check';
import { endpoints } from '../../../src/plugin/protocol';

/** The sandbox directories the generated path values point into. */
export interface FuzzDirs {
  data: string;
  allow: string;
  state: string;
  outside: string;
}

export interface HttpReq {
  kind: 'shaped' | 'json-any' | 'bytes' | 'text' | 'deep' | 'huge' | 'oversize' | 'headers' | 'method';
  method: string;
  route: string;
  headers: Record<string, string>;
  body: string | Buffer;
  /** Only a refusal is acceptable (oversize body, unknown route, wrong method). */
  mustErr?: RegExp;
}

export type RawReq = { kind: 'raw'; bytes: Buffer };

/** Built after the sandbox exists: path values point into it. */
export function requestArbitrary(d: FuzzDirs): fc.Arbitrary<HttpReq | RawReq> {

  const VALID = ['f0', 'f1', 'f2', 'f3', 'f4'];
  const ROUTES = Object.keys(endpoints);
  const HOSTILE_NAMES = ['', '.', '..', '../x', '../../outside', '/etc', 'a/b', 'a\0b', 'a b', '-a', '.hidden', 'a..b', '..a', 'a\nb',
    'a'.repeat(255), 'b'.repeat(256), 'c'.repeat(300), 'é', '名前', '\ud800', 'x\udc00', '😀', 'A'.repeat(60_000)];

  const nameArb = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...VALID) },
    { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,12}$/) },
    { weight: 2, arbitrary: fc.constantFrom(...HOSTILE_NAMES) },
    { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  );
  const idArb = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('m1', 'm2', 'e'.repeat(64)) },
    { weight: 1, arbitrary: fc.constantFrom('', '\ud800', '\udbff', 'a\0b', 'x'.repeat(10_000), ' ', '../..') },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  );
  const pathArb = () =>
    fc.oneof<fc.Arbitrary<string>[]>(
      fc.constantFrom(
        ...['', 'p1', 'p2/q', 'sub/x', '../outside', 'link-out', 'link-out/x', 'link-in/y', 'dangling', 'dangling/x', 'file', 'file/x',
          'p3/../../outside/x', 'p4/./.././p4', 'a\0b', '\ud800', 'x/'.repeat(100)].map((s) => path.join(d.allow, s) + (s.endsWith('/') ? '/' : '')),
        '/', '/etc', '/proc/self/root', d.data, path.join(d.data, 'f0'), d.state, path.join(d.state, 'mounts', 'x'), d.outside, 'relative/x', './x', '',
        `${d.allow}//p5///`, `${d.allow}/../allow/p6`,
      ),
      fc.string({ maxLength: 30 }).map((s) => `${d.allow}/${s}`),
      fc.string({ maxLength: 30 }).map((s) => `/${s}`),
    );
  const keyArb = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('path', 'mountpoint', 'uid', 'gid', 'mode', 'ro', 'rw', 'z', 'Z', 'o', 'onremove') },
    { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'PATH', '', 'Path', 'RO', 'o ', '\0') },
    { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  );
  const valueArb = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom('', 'true', 'false', '1', '0', 'yes', '0750', '755', '7777', '0o777', '-1', '4294967294', '4294967295',
      '1e3', '00', 'ro', 'rw', 'z', 'Z', 'ro,rw', 'z,Z', 'ro,,z', ' ro', 'keep', 'delete', 'x'.repeat(5000)) },
    { weight: 2, arbitrary: pathArb() },
    { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  );
  const optsArb = fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(null, {}, { ro: '' }, { onremove: 'delete' }, { o: 'ro,z' }) },
    { weight: 4, arbitrary: fc.dictionary(keyArb, valueArb, { maxKeys: 4 }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  );


  const routeArb = fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom('/VolumeDriver.Create', '/VolumeDriver.Mount', '/VolumeDriver.Unmount', '/VolumeDriver.Remove', '/VolumeDriver.Get') },
    { weight: 3, arbitrary: fc.constantFrom(...ROUTES) },
  );
  const known = (r: string) => ROUTES.some((k) => k.toLowerCase() === r.split('?')[0].replace(/\/$/, '').toLowerCase());
  const body = (o: unknown) => `${JSON.stringify(o)}\n`;

  const shaped = fc.record({ route: routeArb, b: fc.record({ Name: nameArb, ID: idArb, Opts: optsArb, Extra: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }) })
    .map(({ route, b }): HttpReq => ({ kind: 'shaped', method: 'POST', route, headers: {}, body: body(b) }));
  const wrongTypes = fc.record({ route: routeArb, v: fc.jsonValue({ maxDepth: 4 }) })
    .map(({ route, v }): HttpReq => ({ kind: 'json-any', method: 'POST', route, headers: {}, body: body(v) }));
  const bytes = fc.record({ route: routeArb, b: fc.uint8Array({ maxLength: 2000 }) })
    .map(({ route, b }): HttpReq => ({ kind: 'bytes', method: 'POST', route, headers: {}, body: Buffer.from(b) }));
  const text = fc.record({ route: routeArb, s: fc.string({ unit: 'binary', maxLength: 500 }) })
    .map(({ route, s }): HttpReq => ({ kind: 'text', method: 'POST', route, headers: {}, body: s }));
  const deep = fc.record({ route: routeArb, n: fc.integer({ min: 1, max: 30_000 }), obj: fc.boolean() }).map(({ route, n, obj }): HttpReq => ({
    kind: 'deep', method: 'POST', route, headers: {},
    body: obj ? `{"Name":${'{"a":'.repeat(n)}1${'}'.repeat(n + 1)}` : `${'['.repeat(n)}${']'.repeat(n)}`,
  }));
  const huge = fc.record({ route: routeArb, n: fc.integer({ min: 1000, max: 60_000 }), where: fc.constantFrom('Name', 'ID', 'opt-key', 'opt-value') })
    .map(({ route, n, where }): HttpReq => {
      const s = 'h'.repeat(n);
      const b = where === 'Name' ? { Name: s, ID: 'm1' } : where === 'ID' ? { Name: 'f0', ID: s } : where === 'opt-key' ? { Name: 'f1', Opts: { [s]: '' } } : { Name: 'f1', Opts: { path: `${d.allow}/${s}` } };
      return { kind: 'huge', method: 'POST', route, headers: {}, body: body(b) };
    });
  const oversize = fc.record({ route: routeArb, n: fc.integer({ min: 64 * 1024 + 1, max: 400 * 1024 }) })
    .map(({ route, n }): HttpReq => ({ kind: 'oversize', method: 'POST', route, headers: {}, body: `{"Name":"f0","X":"${'o'.repeat(n)}"}`, mustErr: /larger than the 64kb limit/ }));
  const headers = fc.record({
    route: routeArb,
    h: fc.constantFrom<Record<string, string>>(
      { 'content-type': 'application/json; charset=utf-16' }, { 'content-type': 'text/plain' }, { 'content-type': 'application/x-www-form-urlencoded' },
      { 'content-encoding': 'gzip' }, { 'content-encoding': 'br' }, { 'content-encoding': 'deflate, gzip' }, { 'content-encoding': 'identity' },
      { 'content-type': 'multipart/form-data; boundary=x' }, { host: 'evil.example' }, { 'content-type': 'application/json', 'content-encoding': 'gzip, gzip' },
    ),
    b: fc.record({ Name: nameArb, ID: idArb, Opts: optsArb }, { requiredKeys: [] }),
  }).map(({ route, h, b }): HttpReq => ({ kind: 'headers', method: 'POST', route, headers: h, body: body(b) }));
  const methods = fc.record({ route: fc.oneof(routeArb, fc.constantFrom('/', '/VolumeDriver.create', '/VolumeDriver', '/Plugin.Activate/', '/VolumeDriver.Create/x', '/VolumeDriver.Get?Name=f0', '/%2e%2e/etc/passwd', '/VolumeDriver.Nope')), m: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'POST') })
    .map(({ route, m }): HttpReq => ({ kind: 'method', method: m, route, headers: {}, body: m === 'POST' ? '{}' : '',
      // Express routes ignore case and a trailing slash, so those still reach the endpoint.
      mustErr: m !== 'POST' || !known(route) ? /unknown endpoint|bad request/ : undefined }));

  const raw = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 600 }).map((b) => Buffer.from(b)),
    fc.string({ unit: 'binary', maxLength: 200 }).map((s) => Buffer.from(`POST /VolumeDriver.Get HTTP/1.1\r\n${s}\r\n\r\n`)),
    fc.integer({ min: 0, max: 40 }).map((n) => Buffer.from(`POST /VolumeDriver.Get HTTP/1.1\r\nContent-Length: ${n}\r\n\r\n{"Name":"f0"}\r\n\r\n`)),
    fc.constantFrom(
      'POST /VolumeDriver.Get HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
      'POST /VolumeDriver.Get HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}{}{}',
      'POST /VolumeDriver.Get HTTP/1.1\r\nContent-Length: -1\r\n\r\n',
      'POST /VolumeDriver.Get HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
      'POST /VolumeDriver.Get HTTP/9.9\r\n\r\n',
      `POST /${'x'.repeat(20_000)} HTTP/1.1\r\n\r\n`,
      `POST /VolumeDriver.Get HTTP/1.1\r\nX: ${'y'.repeat(20_000)}\r\n\r\n`,
      'POST /VolumeDriver.Get HTTP/1.1\r\nContent-Length: 13\r\n\r\n{"Name":"f0"}POST /VolumeDriver.List HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}',
    ).map((s) => Buffer.from(s)),
  ).map((bytes): RawReq => ({ kind: 'raw', bytes }));

  const any = (a: fc.Arbitrary<HttpReq> | fc.Arbitrary<RawReq>) => a as fc.Arbitrary<HttpReq | RawReq>;
  return fc.oneof(
    { weight: 50, arbitrary: any(shaped) },
    { weight: 8, arbitrary: any(wrongTypes) },
    { weight: 6, arbitrary: any(bytes) },
    { weight: 6, arbitrary: any(text) },
    { weight: 4, arbitrary: any(deep) },
    { weight: 4, arbitrary: any(huge) },
    { weight: 3, arbitrary: any(oversize) },
    { weight: 6, arbitrary: any(headers) },
    { weight: 5, arbitrary: any(methods) },
    { weight: 4, arbitrary: any(raw) },
  );
}

