// Where the admin socket is, for the daemon (cli.ts serve) and the CLI's client (commands/client.ts)
// alike. A module of its own so that `serve` learns the defaults without loading the client (undici).

export const DEFAULT_ADMIN_SOCKET = '/run/hostvol/admin.sock';
/** Where dockerd puts a managed plugin's sockets on the host (the plugin sees the directory as /run/docker/plugins). */
export const PLUGIN_SOCKETS_DIR = '/run/docker/plugins';
export const ADMIN_SOCKET_NAME = 'admin.sock';
