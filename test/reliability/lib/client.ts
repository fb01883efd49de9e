// The plugin client of the reliability suite: undici over the Unix socket for well-formed calls, raw
// node:net for bytes dockerd would never send. Every reply is checked against the wire contract.
import * as net from 'node:net';
import { Agent, request } from 'undici';

export interface Reply {
  status: number;
  contentType: string;
  /** The parsed JSON body (undefined when the body was not JSON). */
  json: any;
  text: string;
}

/** Thrown when the request never got a reply (server killed, connection refused or reset). */
export class TransportError extends Error {
  override name = 'TransportError';
}

export class Client {
  readonly agent: Agent;

  constructor(
    readonly socketPath: string,
    connections = 64,
  ) {
    // keepAliveTimeout well below the server's 65 s; pipelining 1 = plain keep-alive like Go's client.
    this.agent = new Agent({ connect: { socketPath }, connections, pipelining: 1, keepAliveTimeout: 10_000 });
  }

  /** POSTs `body` (an object is JSON-encoded with Go's trailing newline; a string/Buffer goes as is). */
  async post(endpoint: string, body?: unknown, opts: { headers?: Record<string, string>; method?: string; timeoutMs?: number } = {}): Promise<Reply> {
    const payload =
      body === undefined ? '' : typeof body === 'string' || Buffer.isBuffer(body) || body instanceof Uint8Array ? body : `${JSON.stringify(body)}\n`;
    let res;
    try {
      res = await request(`http://hostvol${endpoint}`, {
        method: (opts.method ?? 'POST') as 'POST',
        body: payload,
        // What dockerd sends (protocol doc 2.1): no Content-Type.
        headers: { accept: 'application/vnd.docker.plugins.v1.2+json', ...opts.headers },
        dispatcher: this.agent,
        headersTimeout: opts.timeoutMs ?? 60_000,
        bodyTimeout: opts.timeoutMs ?? 60_000,
      });
    } catch (err) {
      throw new TransportError(`${endpoint}: ${(err as Error).message}`);
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw new TransportError(`${endpoint}: reading the reply: ${(err as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), json, text };
  }

  /** A call whose reply must be success: returns the JSON, throws with the Err otherwise. */
  async ok(endpoint: string, body?: unknown): Promise<any> {
    const r = await this.post(endpoint, body);
    if (r.status !== 200 || !r.json || typeof r.json !== 'object' || 'Err' in r.json) {
      throw new Error(`${endpoint} ${JSON.stringify(body)} failed: HTTP ${r.status} ${r.text.slice(0, 500)}`);
    }
    return r.json;
  }

  /** A call whose reply must be {"Err"}: returns the message. */
  async err(endpoint: string, body?: unknown): Promise<string> {
    const r = await this.post(endpoint, body);
    if (r.status !== 200 || typeof r.json?.Err !== 'string' || r.json.Err === '') {
      throw new Error(`${endpoint} ${JSON.stringify(body)} should have failed with Err: HTTP ${r.status} ${r.text.slice(0, 500)}`);
    }
    return r.json.Err as string;
  }

  create = (name: string, opts?: Record<string, string> | null) => this.post('/VolumeDriver.Create', { Name: name, Opts: opts ?? null });
  remove = (name: string) => this.post('/VolumeDriver.Remove', { Name: name });
  mount = (name: string, id: string) => this.post('/VolumeDriver.Mount', { ID: id, Name: name });
  unmount = (name: string, id: string) => this.post('/VolumeDriver.Unmount', { ID: id, Name: name });
  get = (name: string) => this.post('/VolumeDriver.Get', { Name: name });
  list = () => this.post('/VolumeDriver.List', {});

  /** Names the driver lists (throws on an Err reply). */
  async names(): Promise<string[]> {
    const r = await this.ok('/VolumeDriver.List', {});
    return (r.Volumes as { Name: string }[]).map((v) => v.Name).sort();
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

/** True when a reply is a well-formed failure: HTTP 200, JSON, a non-empty Err string. */
export function isErr(r: Reply): boolean {
  return r.status === 200 && typeof r.json?.Err === 'string' && r.json.Err.length > 0;
}

export function isOk(r: Reply): boolean {
  return r.status === 200 && r.json !== undefined && r.json !== null && typeof r.json === 'object' && !('Err' in r.json);
}

/**
 * Writes raw bytes to the socket and collects whatever comes back until the server closes the
 * connection, `idleMs` pass without data, or `maxMs` pass.
 */
export function rawExchange(socketPath: string, bytes: Buffer | string, opts: { idleMs?: number; maxMs?: number; end?: boolean } = {}): Promise<{ data: Buffer; closed: boolean; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let closed = false;
    let error: string | undefined;
    const sock = net.connect(socketPath);
    let idle: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(idle);
      clearTimeout(max);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), closed, error });
    };
    const max = setTimeout(finish, opts.maxMs ?? 5000);
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(finish, opts.idleMs ?? 300);
    };
    sock.on('connect', () => {
      sock.write(bytes);
      if (opts.end) sock.end();
      arm();
    });
    sock.on('data', (d) => {
      chunks.push(d);
      arm();
    });
    sock.on('error', (e) => {
      error = e.message;
    });
    sock.on('close', () => {
      closed = true;
      finish();
    });
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parses the first HTTP/1.1 response in `data` (Content-Length framed, as Express answers). */
export function parseHttpResponse(data: Buffer): RawResponse | undefined {
  const text = data.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) return undefined;
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const len = headers['content-length'] !== undefined ? Number(headers['content-length']) : undefined;
  const rest = data.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'));
  const body = (len !== undefined ? rest.subarray(0, len) : rest).toString('utf8');
  return { status: Number(m[1]), headers, body };
}
