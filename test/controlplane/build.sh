#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kubectl and the kubelet reference client
# from the Go module proxy, once. Binaries are cached outside the work tree, keyed by the content
# of go.mod, go.sum and the harness's own Go sources, so a second run does not rebuild.
# Prints the bin directory on the last line of stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

K8S_VERSION=v1.36.3
key=$(cat go.mod go.sum build.sh $(find cmd -name '*.go' | sort) | sha256sum | cut -c1-16)
cache="${TLSBOOT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tlsboot}/controlplane/$key"
bins=(etcd kube-apiserver kube-controller-manager kubectl kubelet-bootstrap)

have_all() { for b in "${bins[@]}"; do [ -x "$cache/bin/$b" ] || return 1; done; }
if have_all; then
  echo "control plane: cached binaries in $cache/bin" >&2
  echo "$cache/bin"
  exit 0
fi

mkdir -p "$cache/bin.partial"
commit=$(go list -m -json "k8s.io/kubernetes@$K8S_VERSION" 2>/dev/null | sed -n 's/.*"Hash": "\(.*\)".*/\1/p' | head -1)
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.gitCommit=${commit:-unknown} -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitCommit=${commit:-unknown}"

build() { # name package
  local start=$SECONDS
  echo "control plane: building $1 (cold builds take 10-25 min on 2 cores in all) ..." >&2
  go build -trimpath -ldflags "$ldflags" -o "$cache/bin.partial/$1" "$2"
  echo "control plane: built $1 in $((SECONDS - start)) s" >&2
}
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kubectl k8s.io/kubernetes/cmd/kubectl
build etcd go.etcd.io/etcd/server/v3
build kubelet-bootstrap ./cmd/kubelet-bootstrap

rm -rf "$cache/bin"
mv "$cache/bin.partial" "$cache/bin"
# Binaries of other (older) keys are dead weight: ~300 MB each.
find "$(dirname "$cache")" -mindepth 1 -maxdepth 1 -not -name "$key" -exec rm -rf {} +
echo "control plane: binaries in $cache/bin" >&2
echo "$cache/bin"
