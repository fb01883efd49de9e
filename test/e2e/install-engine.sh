#!/usr/bin/env bash
# Installs what the end-to-end suite needs when it is missing: Debian's docker.io (dockerd, containerd,
# runc and a 20.10 CLI), docker-compose 1.29 (compose.test.ts), busybox-static (for the test images) and
# attr (setfattr/getfattr), plus the util-linux tools the harness uses (unshare, nsenter, setsid).
# Idempotent: when everything is present it
# touches neither apt nor the network. Package maintainer scripts are kept from starting a system dockerd
# with a policy-rc.d that answers 101 ("service start not allowed"); only a policy-rc.d we created is removed.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "install-engine.sh: must run as root (the e2e suite starts a private dockerd)" >&2
  exit 1
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v containerd >/dev/null 2>&1 || missing+=(docker.io)
command -v runc >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
# The image is built from /bin/busybox alone, so it must be the static build (package busybox-static).
bb_ldd=$(LC_ALL=C ldd /bin/busybox 2>&1 || true)
if ! [ -x /bin/busybox ] || ! /bin/busybox --list >/dev/null 2>&1 || [[ "$bb_ldd" != *"not a dynamic"* ]]; then
  missing+=(busybox-static)
fi
command -v setfattr >/dev/null 2>&1 || missing+=(attr)
for tool in unshare nsenter setsid mount umount; do
  command -v "$tool" >/dev/null 2>&1 || missing+=(util-linux mount)
done
command -v tar >/dev/null 2>&1 || missing+=(tar)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-engine.sh: dockerd $(dockerd --version | awk '{print $3}' | tr -d ,), docker-compose, busybox and attr already present"
  exit 0
fi

# Always install the full set together, so a half-installed machine ends up consistent.
pkgs=$(printf '%s\n' docker.io docker-compose busybox-static attr "${missing[@]}" | sort -u | tr '\n' ' ')
echo "install-engine.sh: installing $pkgs"

# shellcheck disable=SC2086
bash "$(dirname "$0")/apt-install.sh" $pkgs

for bin in dockerd containerd runc docker-compose setfattr; do
  command -v "$bin" >/dev/null 2>&1 || { echo "install-engine.sh: $bin still missing after install" >&2; exit 1; }
done
/bin/busybox --list >/dev/null || { echo "install-engine.sh: /bin/busybox unusable" >&2; exit 1; }
echo "install-engine.sh: done: $(dockerd --version)"
