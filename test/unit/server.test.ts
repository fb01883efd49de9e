// The wire contract as dockerd uses it: every endpoint, no Content-Type, empty bodies, Opts null
// or {}, and every reply HTTP 200 with JSON.
import pino from 'pino';
import { GetResponse, ListResponse } from '../../src/plugin/protocol';
import { destroy, sandbox, type Sandbox } from './support';

let sb: Sandbox;
beforeAll(async () => {
  sb = await sandbox();
});
afterAll(() => destroy(sb));

/** Each test makes the volumes it reads, so it passes run alone; names are unique per test. */
const create = async (Name: string) => expect(await sb.call('/VolumeDriver.Create', { Name, Opts: null })).toEqual({});

describe('activation and capabilities', () => {
  test('Activate answers Implements VolumeDriver to an empty body', async () => {
    expect(await sb.call('/Plugin.Activate')).toEqual({ Implements: ['VolumeDriver'] });
  });

  test('Capabilities is local scope', async () => {
    expect(await sb.call('/VolumeDriver.Capabilities', {})).toEqual({ Capabilities: { Scope: 'local' } });
  });
});

describe('bodies the way dockerd sends them', () => {
  test.each([
    ['Opts null (CLI 23+)', { Name: 'w-null', Opts: null }],
    ['Opts {} (20.10 CLI)', { Name: 'w-empty', Opts: {} }],
    ['no Opts at all', { Name: 'w-none' }],
  ])('Create accepts %s', async (_, body) => {
    expect(await sb.call('/VolumeDriver.Create', body)).toEqual({});
    expect((await sb.call('/VolumeDriver.Get', { Name: body.Name })).Volume.Name).toBe(body.Name);
  });

  test('a body with a trailing newline and no Content-Type is parsed', async () => {
    await create('w-newline');
    const res = await sb.raw('/VolumeDriver.Get', '{"Name":"w-newline"}\n');
    expect(res.status).toBe(200);
    expect(GetResponse.parse(JSON.parse(res.text)).Volume.Name).toBe('w-newline');
  });

  test('an empty body (a retry after a dropped connection) gets Err naming the missing Name', async () => {
    for (const route of ['Create', 'Remove', 'Mount', 'Unmount', 'Path', 'Get']) {
      const reply = await sb.call(`/VolumeDriver.${route}`);
      expect(reply.Err).toMatch(/Name/);
    }
  });

  test('an empty Name is refused, never answered as a volume', async () => {
    expect((await sb.call('/VolumeDriver.Get', { Name: '' })).Err).toMatch(/empty/);
  });

  test('unknown fields are ignored, as dockerd ignores ours', async () => {
    expect(await sb.call('/VolumeDriver.Create', { Name: 'w-extra', Opts: null, Extra: 1 })).toEqual({});
    expect((await sb.call('/VolumeDriver.Get', { Name: 'w-extra' })).Volume.Name).toBe('w-extra');
  });
});

describe('replies', () => {
  test('Get echoes the name, gives an RFC 3339 CreatedAt and the Status fields', async () => {
    await create('r-get');
    const { Volume } = GetResponse.parse(await sb.call('/VolumeDriver.Get', { Name: 'r-get' }));
    expect(Volume.Name).toBe('r-get');
    expect(new Date(Volume.CreatedAt!).toISOString()).toBe(Volume.CreatedAt);
    expect(Object.keys(Volume.Status!).sort()).toEqual(
      ['createdBy', 'label', 'mounts', 'onRemove', 'options', 'path', 'readOnly'].sort(),
    );
  });

  test('Get of an unknown volume is an Err, not a null Volume', async () => {
    expect((await sb.call('/VolumeDriver.Get', { Name: 'nope' })).Err).toBe('volume "nope" does not exist in hostvol');
  });

  test('List gives Name and Mountpoint of every volume', async () => {
    for (const Name of ['r-list-1', 'r-list-2']) await create(Name);
    const { Volumes } = ListResponse.parse(await sb.call('/VolumeDriver.List', {}));
    expect(Volumes.map((v) => v.Name)).toEqual(expect.arrayContaining(['r-list-1', 'r-list-2']));
    for (const v of Volumes) expect(v.Mountpoint).toBe(`${sb.config.dataRoot}/${v.Name}`);
  });

  test('Unmount, Remove and Create answer {} (an empty 200 body would be an error to dockerd)', async () => {
    await create('r-remove');
    const res = await sb.raw('/VolumeDriver.Remove', '{"Name":"r-remove"}');
    expect(res).toEqual({ status: 200, text: '{}' });
  });
});

describe('bad requests', () => {
  test('invalid JSON gets a JSON Err with status 200', async () => {
    const res = await sb.raw('/VolumeDriver.Create', '{"Name":');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).Err).toMatch(/not valid JSON/);
  });

  test('wrong JSON types get Err naming the field', async () => {
    expect((await sb.call('/VolumeDriver.Create', { Name: 5 })).Err).toMatch(/Name/);
    expect((await sb.call('/VolumeDriver.Create', { Name: 'x', Opts: { uid: 5 } })).Err).toMatch(/Opts\.uid/);
    expect((await sb.call('/VolumeDriver.Mount', { Name: 'x' })).Err).toMatch(/ID/);
  });

  test('a body is read as UTF-8, with or without a byte order mark', async () => {
    const body = Buffer.from('{"Name":"w-ünï-日本"}\n');
    for (const bytes of [body, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body])]) {
      const res = await sb.raw('/VolumeDriver.Create', bytes);
      expect(JSON.parse(res.text).Err).toMatch(/^invalid volume name "w-ünï-日本"/);
    }
  });

  test('a body over the limit is refused with Err', async () => {
    const res = await sb.raw('/VolumeDriver.Create', JSON.stringify({ Name: 'big', Opts: { x: 'a'.repeat(100_000) } }));
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).Err).toMatch(/larger than the 64kb limit/);
  });

  test('an unknown endpoint gets a JSON Err listing the real ones', async () => {
    const res = await sb.raw('/VolumeDriver.Frobnicate', '{}');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).Err).toMatch(/unknown endpoint.*\/VolumeDriver\.Mount/);
  });

  test('a JSON Content-Type changes nothing', async () => {
    await create('b-typed');
    const res = await sb.raw('/VolumeDriver.Get', '{"Name":"b-typed"}', { 'content-type': 'application/json' });
    expect(JSON.parse(res.text).Volume.Name).toBe('b-typed');
  });
});

test('bytes that are not HTTP get a JSON Err and a closed connection, and the server keeps serving', async () => {
  const net = await import('node:net');
  const reply = await new Promise<string>((resolve) => {
    const conn = net.connect(sb.config.socket, () => conn.write('\x00\x01garbage\r\n\r\n'));
    let data = '';
    conn.on('data', (d) => (data += d));
    conn.on('close', () => resolve(data));
  });
  expect(reply).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
  expect(JSON.parse(reply.split('\r\n\r\n')[1]).Err).toMatch(/malformed HTTP request/);
  expect(await sb.call('/VolumeDriver.Capabilities', {})).toEqual({ Capabilities: { Scope: 'local' } });
});

describe('List is encoded once per change', () => {
  test('a Create, a Remove or a finished Create shows in the next List, never a stale reply', async () => {
    const names = async () => (await sb.call('/VolumeDriver.List', {})).Volumes.map((v: { Name: string }) => v.Name) as string[];
    const before = await names();
    expect(await names()).toEqual(before);
    await sb.call('/VolumeDriver.Create', { Name: 'lc-new', Opts: null });
    expect(await names()).toContain('lc-new');
    await sb.call('/VolumeDriver.Remove', { Name: 'lc-new' });
    expect(await names()).not.toContain('lc-new');
    expect(await names()).toEqual(before);
  });
});

describe('logging', () => {
  test("a Get of an unknown name is normal traffic (dockerd asks before every Create): debug, not a warning", async () => {
    const lines: { level: number; msg: string; route?: string }[] = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const own = await sandbox({}, { log });
    try {
      await own.call('/VolumeDriver.Get', { Name: 'not-there' });
      await own.call('/VolumeDriver.Mount', { Name: 'not-there', ID: 'x' });
      const failed = (route: string) => lines.filter((l) => l.msg === 'request failed' && l.route === route).map((l) => l.level);
      expect(failed('/VolumeDriver.Get')).toEqual([20]); // pino's debug
      expect(failed('/VolumeDriver.Mount')).toEqual([40]); // pino's warn: a Mount of an unknown volume is worth a look
    } finally {
      await destroy(own);
    }
  });
});
