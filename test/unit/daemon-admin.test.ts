// The admin socket listens from the start but loads nothing: dockerd's first answer never waits for
// Express, undici or prom-client (nor does memory hold them before the first admin request), and a
// listener that cannot be opened is logged without stopping either socket.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { Agent, request } from 'undici';
import type { Config, Daemon } from '../../src/daemon';
import { configUnder } from './support';

const loaded: string[] = [];
// Recorded as they are first required (the real modules still load): which of them start-up paid for.
for (const name of ['express', 'prom-client']) {
  jest.doMock(name, () => (loaded.push(name), jest.requireActual(name)));
}

let dir: string;
let daemons: Daemon[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-da-'));
  fs.writeFileSync(path.join(dir, 'boot_id'), 'boot-1\n');
});
afterEach(async () => {
  await Promise.all(daemons.map((d) => d.close()));
  daemons = [];
  fs.rmSync(dir, { recursive: true, force: true });
});

const configOf = (overrides: Partial<Config> = {}): Config => configUnder(dir, overrides);

async function start(config: Config, log = pino({ level: 'silent' })): Promise<Daemon> {
  const { startDaemon } = require('../../src/daemon') as typeof import('../../src/daemon');
  const d = await startDaemon(config, { log });
  daemons.push(d);
  return d;
}

/** One request over a Unix socket; the reply's body as text. */
async function over(socket: string, method: 'GET' | 'POST', route: string, body?: unknown): Promise<string> {
  const dispatcher = new Agent({ connect: { socketPath: socket } });
  try {
    const res = await request(`http://hostvol${route}`, { method, body: body === undefined ? undefined : JSON.stringify(body), dispatcher });
    return await res.body.text();
  } finally {
    await dispatcher.close();
  }
}

const get = async (config: Config, name: string) => JSON.parse(await over(config.socket, 'POST', '/VolumeDriver.Get', { Name: name }));

test('both sockets serve from the start with none of the admin API modules loaded; the first admin request loads them', async () => {
  const config = configOf();
  const d = await start(config);
  const admin = await d.adminReady;
  expect(d.admin).toBe(admin);
  expect(admin?.admin?.listening).toBe(true);
  expect(fs.lstatSync(config.adminSocket!).mode & 0o777).toBe(0o600);
  // Ready, dockerd answered, and the admin socket listening, with none of the admin API's modules loaded.
  expect(await get(config, 'nothing')).toEqual({ Err: expect.stringContaining('"nothing" does not exist') });
  expect(loaded).toEqual([]);
  expect(await over(config.adminSocket!, 'GET', '/metrics')).toMatch(/^hostvol_plugin_requests_total\{endpoint="\/VolumeDriver.Get",outcome="error"\} 1$/m);
  expect(loaded).toEqual(['express', 'prom-client']);
}, 30_000);

test('closing the daemon closes the admin socket too', async () => {
  const config = configOf();
  const d = await start(config);
  expect((await d.adminReady)?.admin?.listening).toBe(true);
  await d.close();
  expect(fs.existsSync(config.adminSocket!)).toBe(false);
});

test('a metrics address already taken is logged; the plugin socket and the admin socket serve regardless', async () => {
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = taken.address() as net.AddressInfo;
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const config = configOf({ metricsAddress: `127.0.0.1:${port}` });
    const d = await start(config, log);
    const admin = await d.adminReady;
    expect(admin?.metrics).toBeUndefined();
    expect(admin?.admin?.listening).toBe(true);
    const logged = lines.map((l) => JSON.parse(l)).find((e) => e.msg.startsWith('metrics not served'));
    expect(logged).toMatchObject({ level: 50, metricsAddress: `127.0.0.1:${port}`, err: expect.stringContaining('EADDRINUSE') });
    expect(logged.msg).toContain('choose another --metrics-address');
    expect(await get(config, 'nothing')).toEqual({ Err: expect.stringContaining('does not exist') });
  } finally {
    taken.close();
  }
});

test('a malformed metrics address refuses to start, before the plugin socket is made', async () => {
  const config = configOf({ metricsAddress: '9105' });
  await expect(start(config)).rejects.toThrow(/--metrics-address "9105" is not HOST:PORT/);
  expect(fs.existsSync(config.socket)).toBe(false);
});
