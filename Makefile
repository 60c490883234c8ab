# tlsboot developer entry points. `make demo` and `make test` set up what they need.
SHELL := /bin/bash
NODE_MODULES := node_modules/.package-lock.json

.PHONY: all build deps setup setup-demo setup-package test typecheck demo controlplane bench bench-fleet clean e2e-kind fuzz faults package

# Go 1.26 ships in /usr/local/go on this kind of machine; Debian's Go is too old for Kubernetes 1.36.
export PATH := /usr/local/go/bin:$(PATH)

all: build

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: $(NODE_MODULES)

# System tools (Debian packages): checked, and installed when run as root (test/setup.sh).
setup:
	test/setup.sh test

setup-demo:
	test/setup.sh demo

setup-package:
	test/setup.sh package

build: $(NODE_MODULES)
	npx tsc -p tsconfig.json
	chmod +x dist/src/main.js

typecheck: $(NODE_MODULES)
	npx tsc -p tsconfig.json --noEmit

# Builds etcd, kube-apiserver, kube-controller-manager, kubectl and the kubelet reference client
# once (cached under ~/.cache/tlsboot, keyed by go.sum); cold: ~6-25 min on 2 cores.
controlplane: setup-demo
	test/controlplane/build.sh

# The single executables (Node 24 inside, V8 start-up snapshot) and the .debs, for amd64 and
# arm64, into dist/ (packaging/); lintian checks the .debs. About 2 min.
VERSION := $(shell node -p "require('./package.json').version" 2>/dev/null)
package: setup-package build
	packaging/sea.sh x64
	packaging/sea.sh arm64
	packaging/deb.sh amd64
	packaging/deb.sh arm64
	lintian --fail-on error,warning dist/tlsboot_$(VERSION)_amd64.deb dist/tlsboot_$(VERSION)_arm64.deb 2>&1 | grep -v 'running with root privileges'; exit $${PIPESTATUS[0]}

# The end-to-end files that run a second time against the executable (TLSBOOT_BIN).
E2E_PACKAGED := test/e2e/bootstrap.e2e.test.ts test/e2e/rotation.e2e.test.ts test/e2e/workloads.e2e.test.ts test/e2e/credential.e2e.test.ts

# The whole suite: type check, unit and fake-server tests, the end-to-end suite against the real
# control plane (built first if the cache is cold), the packages (test/package), and the
# bootstrap, rotation and daemon/hook end-to-end files again against the executable.
test: setup build controlplane package
	TLSBOOT_CONTROLPLANE_BIN="$$(test/controlplane/build.sh 2>/dev/null | tail -1)" npx tap --timeout=900
	TLSBOOT_CONTROLPLANE_BIN="$$(test/controlplane/build.sh 2>/dev/null | tail -1)" TLSBOOT_BIN=dist/tlsboot-$(VERSION)-linux-$$(node -p process.arch) \
	  npx tap --timeout=900 --disable-coverage $(E2E_PACKAGED)

# The fault suite alone (test/faults: the real control plane stopped, killed, its disk full, its
# clock off); `make test` runs it too.
faults: setup build controlplane
	TLSBOOT_CONTROLPLANE_BIN="$$(test/controlplane/build.sh 2>/dev/null | tail -1)" npx tap --timeout=900 --disable-coverage test/faults

# Fuzz every parser of untrusted input: FUZZ_RUNS inputs (default 120,000), FUZZ_SEED to replay.
fuzz: build
	node dist/test/fuzz/run.js

# Run tlsboot for real against a throw-away local control plane and show what it wrote.
demo: setup-demo build controlplane
	TLSBOOT_CONTROLPLANE_BIN="$$(test/controlplane/build.sh 2>/dev/null | tail -1)" node dist/test/demo.js

# What a fleet does to the real API server (bench/fleet.ts; FLEET_N identities, default 1,000),
# counted from its audit log; about 10 min.
bench-fleet: setup-demo build controlplane
	TLSBOOT_CONTROLPLANE_BIN="$$(test/controlplane/build.sh 2>/dev/null | tail -1)" node dist/bench/fleet.js

bench: setup-demo package controlplane
	TLSBOOT_CONTROLPLANE_BIN="$$(test/controlplane/build.sh 2>/dev/null | tail -1)" node dist/bench/bootstrap.js

clean:
	rm -rf dist .tap coverage

# The end-to-end suite against a kind cluster (needs Docker and kind; not run in CI here).
e2e-kind: build
	test/kind/run.sh
