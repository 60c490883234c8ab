#!/usr/bin/env bash
# Builds the single executable for one architecture: dist/tlsboot-<version>-linux-<arch>.
# The program is bundled into one CommonJS file (esbuild), built into a V8 start-up snapshot by
# the very Node.js binary it is injected into (postject). For arm64 that binary runs under
# qemu-user (Debian's qemu-user-static), as a snapshot must be made by its target.
#
#   packaging/sea.sh x64|arm64
set -euo pipefail
arch=${1:?usage: packaging/sea.sh x64|arm64}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=$(node -p "require('./package.json').version")
work=dist/sea
mkdir -p "$work"
# Node's official builds carry a symbol table (about 15 MB) that nothing at run time reads; the
# snapshot is then made by the stripped binary that ships.
node_bin="$work/node-$arch"
pinned=$(packaging/runtime.sh "$arch")
if [ ! -x "$node_bin" ] || [ "$pinned" -nt "$node_bin" ]; then
  case "$arch" in x64) strip_cmd=strip ;; arm64) strip_cmd=aarch64-linux-gnu-strip ;; esac
  command -v "$strip_cmd" >/dev/null || { echo "sea: $strip_cmd is missing (apt-get install binutils$([ "$arch" = arm64 ] && echo -aarch64-linux-gnu))" >&2; exit 2; }
  "$strip_cmd" -o "$node_bin.partial" "$pinned"
  mv "$node_bin.partial" "$node_bin"
fi

# One bundle serves every architecture. import.meta.url stands for the executable itself: the
# libraries that call createRequire(import.meta.url) need a file URL, and none reads beside it.
npx esbuild src/sea.ts --bundle --platform=node --format=cjs --target=node24 \
  --define:TLSBOOT_BUNDLED_VERSION="\"$version\"" \
  --define:import.meta.url=TLSBOOT_IMPORT_META_URL \
  --banner:js='var TLSBOOT_IMPORT_META_URL = require("node:url").pathToFileURL(process.execPath).href;' \
  --minify-whitespace --minify-syntax --legal-comments=none --log-level=warning --log-override:empty-import-meta=silent \
  --outfile="$work/tlsboot.cjs"

# The shipped files (units, drop-ins, examples) go in as assets, for `tlsboot bundle`.
config="$work/sea-$arch.json"
node -e '
  const [main, output, root, files] = process.argv.slice(1);
  const assets = Object.fromEntries(files.split("\n").filter(Boolean).map((f) => [f, root + "/" + f]));
  require("fs").writeFileSync(process.argv[5], JSON.stringify({ main, output, useSnapshot: true, disableExperimentalSEAWarning: true, assets }, null, 2));
' "$root/$work/tlsboot.cjs" "$root/$work/tlsboot-$arch.blob" "$root" "$(find systemd examples -type f | sort)" "$config"

run_target=()
if [ "$arch" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
  # Debian's arm64 cross libraries (libc6-arm64-cross, libstdc++6-arm64-cross) are the sysroot.
  command -v qemu-aarch64-static >/dev/null && [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || {
    echo "sea: building the arm64 snapshot needs qemu-user and arm64 libraries: apt-get install qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross" >&2; exit 2; }
  run_target=(qemu-aarch64-static -L /usr/aarch64-linux-gnu)
fi
# The snapshot build prints Node's warnings about built-in modules it has not verified in
# snapshots; the executable's tests are what checks them.
if ! log=$("${run_target[@]}" "$node_bin" --experimental-sea-config "$config" 2>&1); then
  echo "$log" >&2
  echo "sea: the $arch snapshot did not build (above); a module that loads at snapshot time holds what V8 cannot keep" >&2
  exit 1
fi

out="dist/tlsboot-$version-linux-$arch"
cp "$node_bin" "$out.partial"
chmod 0755 "$out.partial"
# postject warns about the .note.100 section of Node's official ELF builds; harmless.
npx postject "$out.partial" NODE_SEA_BLOB "$work/tlsboot-$arch.blob" --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 2>&1 | grep -v "string offset for section\|injection of\|Injection done" || true
mv "$out.partial" "$out"
echo "$out"
