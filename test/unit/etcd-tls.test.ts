// Cluster mode over TLS: `serve --etcd https://… --etcd-cacert --etcd-cert --etcd-key` against a real
// etcd member that requires client certificates (certificates made here with openssl). The daemon is
// started in-process with the cluster config the CLI builds from those flags.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EtcdCluster } from '../reliability/lib/etcd-cluster';
import { destroy, sandbox, type Sandbox } from './support';

jest.setTimeout(60_000);

let etcd: EtcdCluster;
let pki: string;
const sandboxes: Sandbox[] = [];

/** A CA, and a certificate for 127.0.0.1 signed by it (server and client use alike), as PEM files. */
function makePki(dir: string): void {
  const sh = (script: string) => execFileSync('bash', ['-ec', script], { cwd: dir, stdio: 'pipe' });
  const key = '-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';
  sh(`openssl req -x509 ${key} -keyout ca.key -out ca.pem -days 2 -subj /CN=hostvol-test-ca`);
  for (const name of ['server', 'client']) {
    sh(`openssl req ${key} -keyout ${name}.key -out ${name}.csr -subj /CN=${name}
        printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' > ${name}.ext
        openssl x509 -req -in ${name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ${name}.pem -days 2 -extfile ${name}.ext`);
  }
}

beforeAll(async () => {
  pki = fs.mkdtempSync('/tmp/hostvol-etcd-tls-');
  makePki(pki);
  const f = (n: string) => path.join(pki, n);
  etcd = await EtcdCluster.start(path.join(pki, 'etcd'), 1, { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') });
});
afterAll(async () => {
  for (const sb of sandboxes) await destroy(sb);
  await etcd?.stop();
  fs.rmSync(pki, { recursive: true, force: true });
});

const cluster = (more: object = {}) => ({
  urls: etcd.urls, node: 'tls-node', prefix: '/tls', leaseTtl: 5, opTimeoutMs: 3000,
  cacert: path.join(pki, 'ca.pem'), cert: path.join(pki, 'client.pem'), key: path.join(pki, 'client.key'), ...more,
});

test('with the CA and a client certificate, hostvol serves in cluster mode over TLS', async () => {
  const sb = await sandbox({ cluster: cluster() });
  sandboxes.push(sb);
  expect(await sb.call('/VolumeDriver.Capabilities', {})).toEqual({ Capabilities: { Scope: 'global' } });
  expect(await sb.call('/VolumeDriver.Create', { Name: 'tls-vol', Opts: {} })).toEqual({});
  const out = execFileSync('etcdctl', ['--endpoints', etcd.urls[0], '--cacert', cluster().cacert, '--cert', cluster().cert, '--key', cluster().key, 'get', '--print-value-only', '/tls/volumes/tls-vol']);
  expect(JSON.parse(out.toString())).toMatchObject({ name: 'tls-vol', state: 'ready', node: 'tls-node' });
});

test('without a client certificate the start is refused with what could not be reached', async () => {
  await expect(sandbox({ cluster: cluster({ cert: undefined, key: undefined }) })).rejects.toThrow(
    /^cannot grant this node a lease: etcd \(https:\/\/127\.0\.0\.1:\d+\) is unreachable or has no quorum/,
  );
});
