// The plugin protocol on the wire, as dockerd speaks it (protocol doc section 2.1): POST, no
// Content-Type, a compact JSON body plus "\n", HTTP/1.1 keep-alive. Shared by the load generator
// and the one-off probes; deliberately no http.Agent, no allocation beyond one Buffer per request.
import * as net from 'node:net';

/** The exact bytes dockerd would send for `route` with `body` (undefined: an empty body, like Activate). */
export function requestBytes(route: string, body: unknown): Buffer {
  const payload = body === undefined ? '' : `${JSON.stringify(body)}\n`;
  const head =
    `POST ${route} HTTP/1.1\r\nHost: plugin.moby.localhost\r\nUser-Agent: Go-http-client/1.1\r\n` +
    `Content-Length: ${Buffer.byteLength(payload)}\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\n\r\n`;
  return Buffer.from(head + payload);
}

export interface Reply {
  status: number;
  body: Buffer;
}

const CRLF2 = Buffer.from('\r\n\r\n');
const LENGTH = /\r\ncontent-length:\s*(\d+)/i;

/**
 * Reads one reply at a time from a connection (one request in flight, as dockerd does per
 * connection). Replies must carry Content-Length, which both Express and the floor send.
 */
export class ReplyReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private need = -1;
  private status = 0;
  private headEnd = 0;

  /** Feeds data; returns the complete reply, or undefined while more is needed. Copies each byte once. */
  push(chunk: Buffer): Reply | undefined {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.need < 0) {
      // The head is small and nearly always inside the first chunk; join only until it is found.
      const buf = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks, this.size);
      this.chunks = [buf];
      const end = buf.indexOf(CRLF2);
      if (end < 0) return undefined;
      const head = buf.toString('latin1', 0, end);
      const m = LENGTH.exec(head);
      if (!m) throw new Error(`reply without Content-Length: ${head.split('\r\n')[0]}`);
      this.status = Number(head.slice(9, 12));
      this.headEnd = end + 4;
      this.need = this.headEnd + Number(m[1]);
    }
    if (this.size < this.need) return undefined;
    if (this.size > this.need) throw new Error('data after the reply (the server answered twice?)');
    const buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size);
    const reply = { status: this.status, body: buf.subarray(this.headEnd) };
    this.chunks = [];
    this.size = 0;
    this.need = -1;
    return reply;
  }
}

/** One request on a new connection, closed afterwards. Rejects on connection errors (used to poll start-up). */
export function oneRequest(socket: string, route: string, body: unknown, timeoutMs = 60_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const conn = net.createConnection(socket);
    const reader = new ReplyReader();
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`${route}: no reply within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.once('connect', () => conn.write(requestBytes(route, body)));
    conn.on('data', (chunk: Buffer) => {
      let reply: Reply | undefined;
      try {
        reply = reader.push(chunk);
      } catch (err) {
        clearTimeout(timer);
        conn.destroy();
        reject(err);
        return;
      }
      if (!reply) return;
      clearTimeout(timer);
      conn.destroy();
      resolve(reply);
    });
    conn.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    conn.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`${route}: connection closed before a reply`));
    });
  });
}

/** Parses a reply body; throws with the Err text when the plugin answered {"Err": ...}. */
export function okJson(route: string, reply: Reply): any {
  const parsed = JSON.parse(reply.body.toString('utf8'));
  if (reply.status !== 200) throw new Error(`${route}: HTTP ${reply.status}`);
  if (parsed && typeof parsed.Err === 'string' && parsed.Err !== '') throw new Error(`${route}: ${parsed.Err}`);
  return parsed;
}
