#!/usr/bin/env bash
# Prints the path of the pinned Node.js binary for an architecture (x64 or arm64), fetching the
# official build from the npm registry once into ~/.cache/tlsboot/node and checking it against
# the integrity in packaging/node-runtime.json.
#
#   packaging/runtime.sh x64
set -euo pipefail
arch=${1:?usage: packaging/runtime.sh x64|arm64}
here=$(cd "$(dirname "$0")" && pwd)
pin() { node -p "const r = require('$here/node-runtime.json'); $1"; }
version=$(pin 'r.version')
name=$(pin "(r.packages['$arch'] || {}).name || ''")
[ -n "$name" ] || { echo "runtime: no Node.js is pinned for architecture '$arch' in packaging/node-runtime.json (x64, arm64)" >&2; exit 2; }
want=$(pin "r.packages['$arch'].integrity")
cache=${TLSBOOT_CACHE:-$HOME/.cache/tlsboot}/node/$version/$arch
if [ ! -x "$cache/node" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  [ "$got" = "$want" ] || { echo "runtime: $name@$version from the registry has integrity $got, not the pinned $want; refusing it" >&2; exit 1; }
  tar -xzf "$tgz" -C "$tmp" package/bin/node
  mkdir -p "$cache"
  mv "$tmp/package/bin/node" "$cache/node.partial"
  mv "$cache/node.partial" "$cache/node"
fi
echo "$cache/node"
