#!/usr/bin/env bash
# The one place that knows which system tools tlsboot's demo and tests use. `make demo`,
# `make test` (and so .ci/run) call it first. It checks every tool; as root it installs the
# missing Debian packages (one `apt-get update`, one `apt-get install`), otherwise it prints the
# one command to run and exits 2 before any test starts.
#
#   test/setup.sh demo     what `make demo` and `make bench` need
#   test/setup.sh package  what `make package` needs (the executables and .debs)
#   test/setup.sh test     what the whole suite needs (the default; it builds the packages too)
set -euo pipefail
profile=${1:-test}
case "$profile" in demo|package|test) ;; *) echo "setup: usage: test/setup.sh [demo|package|test]" >&2; exit 2 ;; esac

# Go 1.26 is the machine's (Debian's Go is too old for Kubernetes 1.36): /usr/local/go/bin when
# it is not on PATH.
[ -d /usr/local/go/bin ] && PATH="/usr/local/go/bin:$PATH"

missing=()   # Debian packages
problems=()  # what no package here fixes
want() { # command package
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}

version_at_least() { # have want: dotted versions
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]
}

if command -v node >/dev/null 2>&1; then
  v=$(node -p 'process.versions.node')
  version_at_least "$v" 20.19.0 || problems+=("Node.js $v is too old: tlsboot needs >= 20.19")
else
  problems+=("Node.js >= 20.19 is not installed")
fi
if command -v go >/dev/null 2>&1; then
  v=$(go env GOVERSION | sed 's/^go//')
  version_at_least "$v" 1.26 || problems+=("Go $v is too old: the test control plane (Kubernetes 1.36) needs Go >= 1.26")
else
  problems+=("Go >= 1.26 is not installed (it builds the test control plane; Debian's Go is too old)")
fi
want openssl openssl
want make make
want git git
if [ "$profile" = package ] || [ "$profile" = test ]; then
  want dpkg-deb dpkg
  want strip binutils
  want aarch64-linux-gnu-strip binutils-aarch64-linux-gnu
  want qemu-aarch64-static qemu-user-static      # the arm64 snapshot is built, and tested, under qemu-user
  [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || missing+=(libc6-arm64-cross)
  [ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ] || missing+=(libstdc++6-arm64-cross)
  want lintian lintian
  want xz xz-utils
fi
if [ "$profile" = test ]; then
  want unshare util-linux        # the executable runs under a host name of the test's own
  want systemd-analyze systemd   # the units are verified
  want systemd-notify systemd    # sd_notify
  want python3 python3           # a real AF_UNIX datagram listener for sd_notify
  want curl curl                 # keepalived's check script
  want haproxy haproxy           # the haproxy workload test
  want keepalived keepalived     # keepalived --config-test
  want getent libc-bin
  want faketime faketime         # the fault suite moves the clock of one process
  want promtool prometheus       # the shipped alert rules are checked and unit-tested with promtool
  # The haproxy example writes outputs with group haproxy; the haproxy package creates it.
  getent group haproxy >/dev/null 2>&1 || missing+=(haproxy)
fi

if [ ${#problems[@]} -gt 0 ]; then
  printf 'setup: %s\n' "${problems[@]}" >&2
  exit 2
fi
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing Debian packages for 'make $profile'; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 2
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Check again: a package that installed but did not bring its tool is a setup bug, say so here.
for p in "${missing[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || { echo "setup: $p did not install" >&2; exit 2; }; done
getent group haproxy >/dev/null 2>&1 || [ "$profile" != test ] || { echo "setup: group haproxy is still missing after installing haproxy" >&2; exit 2; }
echo "setup: done" >&2
