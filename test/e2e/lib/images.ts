// Test images without a registry (harness doc section 3): `bb:latest` is /bin/busybox (busybox-static)
// with a symlink for every applet; `bbseed:latest` is the same plus files under /seed for copy-up tests.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from './proc';

export const BB_IMAGE = 'bb:latest';
export const SEED_IMAGE = 'bbseed:latest';
/** Files in bbseed:latest under /seed, with their content. */
export const SEED_FILES: Record<string, string> = {
  'seed/x': 'seed file x\n',
  'seed/sub/y': 'nested seed file y\n',
};

/** Builds both images in the daemon reachable through `env` (DOCKER_HOST set). */
export async function buildImages(workDir: string, dockerCli: string, env: NodeJS.ProcessEnv): Promise<void> {
  const root = path.join(workDir, 'bb');
  const extra = path.join(workDir, 'seedextra');
  fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  const applets = (await run('/bin/busybox', ['--list'])).stdout.split('\n').filter(Boolean);
  if (applets.length < 100) throw new Error(`busybox lists only ${applets.length} applets; is busybox-static installed?`);
  for (const a of applets) {
    const link = path.join(root, 'bin', a);
    if (!fs.existsSync(link)) fs.symlinkSync('busybox', link);
  }
  for (const d of ['tmp', 'etc', 'root', 'proc', 'sys', 'dev']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  for (const [rel, content] of Object.entries(SEED_FILES)) {
    fs.mkdirSync(path.dirname(path.join(extra, rel)), { recursive: true });
    fs.writeFileSync(path.join(extra, rel), content);
  }
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const dk = q(dockerCli);
  await run(
    'bash',
    [
      '-c',
      `set -eo pipefail
       tar -C ${q(root)} -c . | ${dk} import - ${BB_IMAGE} >/dev/null
       tar -c -C ${q(root)} . -C ${q(extra)} seed | ${dk} import - ${SEED_IMAGE} >/dev/null`,
    ],
    { env, timeoutMs: 120_000 },
  );
}
