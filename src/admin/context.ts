// What every admin route is given: the driver (once the store is loaded), the daemon's logger, a
// client of dockerd's API, the metrics and the daemon's configuration. Routers take this one object
// (createAdminApp(ctx), archiveRouter(ctx), …), so adding a router never changes the daemon's wiring.
import type { Logger } from 'pino';
import type { Config } from '../daemon';
import type { Driver } from '../volumes/driver';
import type { DockerClient } from './docker';
import type { Metrics } from './metrics';

export interface AdminContext {
  /** Resolves once the store is loaded and recovery is done; rejects when the daemon refuses to serve. */
  ready: Promise<Driver>;
  log: Logger;
  /**
   * dockerd's API as this daemon reaches it (--docker-host / DOCKER_HOST). A legacy hostvol reaches it;
   * a managed plugin has no mount of dockerd's socket, so its calls fail with DockerUnreachableError
   * (503): what must work for both (containers, prune, doctor) the CLI asks dockerd for itself.
   */
  docker: DockerClient;
  metrics: Metrics;
  config: Config;
}
