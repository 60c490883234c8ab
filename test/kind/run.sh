#!/usr/bin/env bash
# make e2e-kind: run tlsboot's end-to-end suite against a kind cluster (needs Docker and kind).
# The tests attach to the cluster through TLSBOOT_E2E_KUBECONFIG instead of starting their own
# control plane; the scenarios that stop kube-apiserver are skipped there.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v kind >/dev/null || { echo "e2e-kind: kind is not installed (https://kind.sigs.k8s.io)" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "e2e-kind: Docker is not running" >&2; exit 2; }
work=$(mktemp -d)
cleanup() { kind delete cluster --name tlsboot >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
kind create cluster --config test/kind/kind-tlsboot.yaml --wait 120s
kind get kubeconfig --name tlsboot > "$work/admin.kubeconfig"
export TLSBOOT_E2E_KUBECONFIG="$work/admin.kubeconfig"
export TLSBOOT_CONTROLPLANE_BIN="$(test/controlplane/build.sh | tail -1)"  # kubectl + kubelet-bootstrap
npx tap --timeout=900 --disable-coverage test/e2e
