// Test support for the admin API: a client of a sandbox's real admin socket, the same one the CLI uses.
import { AdminClient } from '../../src/commands/client';
import type { Sandbox } from './support';

export interface Admin {
  client: AdminClient;
  /** A JSON call that resolves to the status and parsed body, whatever the status. */
  call(method: 'GET' | 'POST', route: string, body?: unknown): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export function adminOf(sb: Sandbox): Admin {
  const client = new AdminClient(sb.config.adminSocket!);
  return {
    client,
    async call(method, route, body) {
      const res = await client.request(method, route, body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      const text = await res.body.text();
      return { status: res.statusCode, body: JSON.parse(text) };
    },
    close: () => client.close(),
  };
}

/** Whether `p` is a mount point now (from this process's mount table). */
export async function isMountPoint(p: string): Promise<boolean> {
  const { readMounts } = await import('../../src/host/mountinfo');
  return (await readMounts()).some((m) => m.mountPoint === p);
}
