// The request path of a hostvol that must not serve the store it was started on (store/identity.ts).
// It still answers, because dockerd needs answers: a dead socket costs every docker command 15 s of
// retries. Every call that would act on a volume gets {"Err": reason}, which dockerd shows to the user
// (Create, Mount, Remove; reason names the `docker plugin set` that fixes it).
//
// Get is the exception. dockerd treats any Get failure other than a dead connection as "no such volume"
// and then forgets the volume for good: its driver mapping, labels and options (docker-volume-protocol.md
// section 4.2), and a later `docker run -v name:/p` would create a new, empty `local` volume of that name.
// So Get answers that the volume exists, with the reason as its Status (what `docker volume inspect`
// shows); the Mount that follows is then refused with the reason.
import type * as http from 'node:http';
import * as path from 'node:path';
import getRawBody from 'raw-body';
import type { Logger } from 'pino';

export function refusingApp(reason: string, mountRoot: string, log: Logger): http.RequestListener {
  const reply = (route: string, name: unknown): unknown => {
    switch (route) {
      case '/plugin.activate':
        return { Implements: ['VolumeDriver'] };
      case '/volumedriver.capabilities':
        return { Capabilities: { Scope: 'local' } };
      case '/volumedriver.get':
        if (typeof name !== 'string' || name === '') return { Err: reason };
        return { Volume: { Name: name, Mountpoint: path.join(mountRoot, name), Status: { refused: reason } } };
      default:
        return { Err: reason };
    }
  };
  return (req, res) => {
    getRawBody(req, { limit: '64kb', encoding: 'utf8' }, (err, raw) => {
      let name: unknown;
      try {
        name = err ? undefined : (JSON.parse(raw || '{}') as { Name?: unknown }).Name;
      } catch {
        name = undefined;
      }
      const route = (req.url ?? '').split('?')[0].replace(/\/$/, '').toLowerCase();
      const body = JSON.stringify(reply(route, name));
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      log.warn({ route: req.url, name }, 'request refused: started on a different store');
    });
  };
}
