// Test support for the admin API: a client of a sandbox's real admin socket, the same one the CLI uses.
import { AdminClient } from '../../src/commands/client';
import type { Config } from '../../src/daemon';
import { destroy, sandbox, type Sandbox } from './support';

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

/**
 * A sandboxed daemon and a client of its admin socket, made before the file's tests (or before each
 * test, with `each`) and destroyed after; `use` receives them, again after each `reconnect()` (a
 * new client, for a daemon that was restarted).
 */
export function useAdminSandbox(
  use: (sb: Sandbox, admin: Admin) => void, opts: { each?: boolean; config?: Partial<Config> } = {},
): { reconnect(): Promise<void> } {
  let sb: Sandbox | undefined;
  let admin: Admin | undefined;
  (opts.each ? beforeEach : beforeAll)(async () => {
    sb = await sandbox(opts.config);
    admin = adminOf(sb);
    use(sb, admin);
  });
  (opts.each ? afterEach : afterAll)(async () => {
    try {
      await admin?.close();
    } finally {
      if (sb) await destroy(sb);
    }
  });
  return {
    async reconnect() {
      await admin?.close();
      admin = adminOf(sb!);
      use(sb!, admin);
    },
  };
}
