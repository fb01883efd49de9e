#!/usr/bin/env bash
# Builds plugin/rootfs for the managed plugin from this machine: the Node binary and the libraries
# ldd lists, hostvol's dist/ and production node_modules, and the empty directories config.json mounts
# onto. Mounts and xattrs are libc calls through koffi; the one binary hostvol spawns is /usr/bin/zstd,
# for zstd-compressed export and import (src/archive/compress.ts), so it goes in with its libraries.
# Run from the repo root (make plugin).
set -euo pipefail
OUT=plugin
R=$OUT/rootfs
rm -rf "$R" "$OUT/config.json"
mkdir -p "$R"/{usr/bin,bin,app,run/docker/plugins,mnt/volumes,var/lib/hostvol,host-paths,tmp,proc,sys,dev,etc}
chmod 1777 "$R/tmp"

copy_bin() { # copy a binary and every shared library it links to the same paths in the rootfs
  local bin; bin=$(readlink -f "$1")
  install -D -m 0755 "$bin" "$R$2"
  for lib in $(ldd "$bin" | grep -oE '/[^ ]+'); do
    [ -e "$R$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$R$lib"
  done
}
copy_bin "$(command -v node)" /usr/bin/node
copy_bin /usr/bin/zstd /usr/bin/zstd

cp -r dist package.json package-lock.json "$R/app/"
# Production dependencies only, pruned from the already built tree (no second native build).
# Its contents, not the directory: node_modules may be a symlink (a git worktree sharing one install),
# and npm prune below must never run through it into the original.
mkdir -p "$R/app/node_modules" && cp -a node_modules/. "$R/app/node_modules/"
(cd "$R/app" && npm prune --omit=dev --no-audit --no-fund --ignore-scripts >/dev/null 2>&1 && rm package-lock.json)
# The native addon is all better-sqlite3 needs at run time; drop its sources and build leftovers.
rm -rf "$R/app/node_modules/better-sqlite3/"{deps,src} "$R/app/node_modules/better-sqlite3/build/"{Release/obj*,Release/.deps,Release/test_extension.node,deps}
rm -f "$R/app/dist/"*.map
# Two plugins cannot be created from identical content; make every build distinct.
echo "hostvol $(node -p 'require("./package.json").version') $(git rev-parse --short HEAD 2>/dev/null || echo nogit) $(date -u +%FT%TZ) $$" > "$R/.instance"

cp config.json "$OUT/config.json"
echo "rootfs: $(du -sh "$R" | cut -f1) in $R"
