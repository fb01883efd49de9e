# hostvol: `make run` and `make test` do all set-up on a fresh Debian machine (run as root).
SHELL := /bin/bash
.DEFAULT_GOAL := build
VERSION := $(shell node -p 'require("./package.json").version')
JEST := node_modules/.bin/jest
RESULTS := .test-results

.PHONY: build run test test-unit test-e2e system-deps engine registry etcd test-deps plugin plugin-enable bench reliability clean

# npm ci only when the lock file changed since the last install (it rebuilds better-sqlite3 from source).
node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	touch $@

dist/cli.js: node_modules/.installed tsconfig.json $(shell find src -name '*.ts')
	node_modules/.bin/tsc -p tsconfig.json
	chmod +x dist/cli.js

build: dist/cli.js

# getfattr/setfattr: the tests read and write SELinux labels with them (hostvol itself calls libc).
system-deps:
	@command -v setfattr >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends attr; }

# Serves on the default socket with the embedded store (needs root: /run/docker/plugins, mount(2)).
run: build
	node dist/cli.js serve $(ARGS)

# Docker's engine (Debian docker.io) and busybox for the end-to-end suites.
engine:
	bash test/e2e/install-engine.sh

# Debian's docker-registry: the e2e suites push, install and upgrade the managed plugin through a private one.
registry:
	bash test/e2e/install-registry.sh

# Cluster mode's tests start their own etcd members (Debian's etcd-server 3.4; etcdctl to look inside).
# apt-install.sh keeps the package scripts from starting a system etcd on the default ports.
etcd:
	@{ [ -x /usr/bin/etcd ] && command -v etcdctl >/dev/null; } || bash test/e2e/apt-install.sh etcd-server etcd-client

# The reliability suites' instruments: a FUSE layer that forgets unsynced writes at a power cut
# (fuse3, python3-pyfuse3, run by /usr/bin/python3), an fsync-delaying LD_PRELOAD shim (gcc), and strace,
# which holds lazyfs's reads so a test can kill a FUSE caller mid-request.
test-deps: etcd
	@{ [ -e /usr/bin/fusermount3 ] && /usr/bin/python3 -c 'import pyfuse3, trio' 2>/dev/null && command -v cc >/dev/null && command -v strace >/dev/null; } || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fuse3 python3-pyfuse3 python3-trio gcc libc6-dev strace; }

test: build system-deps engine registry test-deps
	@rm -rf $(RESULTS) && mkdir -p $(RESULTS)
	$(JEST) --selectProjects unit --json --outputFile=$(RESULTS)/unit.json
	$(JEST) --selectProjects reliability --runInBand --json --outputFile=$(RESULTS)/reliability.json
	$(JEST) --selectProjects e2e --runInBand --verbose --json --outputFile=$(RESULTS)/e2e.json
	@node test/summary.js $(RESULTS)/*.json

test-unit: build system-deps etcd
	$(JEST) --selectProjects unit

test-e2e: build system-deps engine registry
	$(JEST) --selectProjects e2e --runInBand --verbose

reliability: build system-deps test-deps
	npm run reliability

# One stable name, whatever the version: dockerd records it as every volume's driver (hostvol:latest),
# so a plugin created under another name (hostvol:0.2.0) would strand the volumes of the old one.
# The version is in the rootfs (/.instance) and, through a registry, in the image tag.
PLUGIN ?= hostvol

# Managed plugin: rootfs from this machine's Node and libraries, then `docker plugin create`.
plugin: build system-deps
	bash plugin/build-rootfs.sh
	docker plugin create $(PLUGIN) plugin/

# The host directories config.json binds must exist before enable.
plugin-enable:
	mkdir -p /var/lib/hostvol /srv/hostvol
	docker plugin enable $(PLUGIN)

bench: build system-deps engine
	npm run bench

clean:
	rm -rf dist $(RESULTS) plugin/rootfs plugin/config.json
