#!/usr/bin/env bash
# Installs Debian's docker-registry (distribution 2.8) when it is missing: test/e2e/plugin-upgrade.test.ts
# and readme-install.test.ts push and install the managed plugin through it, on loopback inside the
# engine's private network namespace. Idempotent: when the binary is there it touches neither apt nor the
# network. The package's own service is kept from starting (policy-rc.d answering 101, removed only if we
# created it): the tests start a private instance with their own config file.
set -euo pipefail
if [ -x /usr/bin/docker-registry ]; then
  echo "install-registry.sh: $(/usr/bin/docker-registry --version 2>/dev/null | head -1) already present"
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" docker-registry
[ -x /usr/bin/docker-registry ] || { echo "install-registry.sh: /usr/bin/docker-registry still missing" >&2; exit 1; }
echo "install-registry.sh: done"
