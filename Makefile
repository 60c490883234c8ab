# tlsboot developer entry points. `make demo` and `make test` set up what they need.
SHELL := /bin/bash
NODE_MODULES := node_modules/.package-lock.json

.PHONY: all build deps setup setup-demo test typecheck demo controlplane bench clean e2e-kind fuzz faults

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

build: $(NODE_MODULES)
	npx tsc -p tsconfig.json
	chmod +x dist/src/main.js

typecheck: $(NODE_MODULES)
	npx tsc -p tsconfig.json --noEmit

# Builds etcd, kube-apiserver, kube-controller-manager, kubectl and the kubelet reference client
# once (cached under ~/.cache/tlsboot, keyed by go.sum); cold: ~6-25 min on 2 cores.
controlplane: setup-demo
	test/controlplane/build.sh

# The whole suite: type check, unit and fake-server tests, and the end-to-end suite against the
# real control plane (built first if the cache is cold).
test: setup build controlplane
	TLSBOOT_CONTROLPLANE_BIN="$$(test/controlplane/build.sh 2>/dev/null | tail -1)" npx tap --timeout=900

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

bench: setup-demo build controlplane
	TLSBOOT_CONTROLPLANE_BIN="$$(test/controlplane/build.sh 2>/dev/null | tail -1)" node dist/bench/bootstrap.js

clean:
	rm -rf dist .tap coverage

# The end-to-end suite against a kind cluster (needs Docker and kind; not run in CI here).
e2e-kind: build
	test/kind/run.sh
