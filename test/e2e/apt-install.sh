#!/usr/bin/env bash
# apt-get installs the packages named as arguments without letting their services start: a
# policy-rc.d answering 101 stands while apt runs (and is removed only if this script created it).
# The tests start private instances of dockerd, docker-registry and etcd with their own configuration;
# a host-wide instance started by a package's postinst would hold their ports and sockets.
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: apt-install.sh PACKAGE..." >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive
created=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created=1
fi
cleanup() { if [ "$created" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$@"
