#!/usr/bin/env bash
# Builds dist/tlsboot_<version>_<arch>.deb (amd64 or arm64) around the single executable that
# packaging/sea.sh made: /usr/bin/tlsboot, the units and drop-ins, the examples, /etc/tlsboot.
# The maintainer scripts reload systemd where it runs; they never enable or start a unit.
#
#   packaging/deb.sh amd64|arm64
set -euo pipefail
arch=${1:?usage: packaging/deb.sh amd64|arm64}
case "$arch" in amd64) node_arch=x64 ;; arm64) node_arch=arm64 ;; *) echo "deb: architecture '$arch' is not built (amd64, arm64)" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=$(node -p "require('./package.json').version")
exe="dist/tlsboot-$version-linux-$node_arch"
[ -x "$exe" ] || { echo "deb: $exe is missing; run packaging/sea.sh $node_arch (make package) first" >&2; exit 2; }

stage="dist/deb/$arch"
rm -rf "$stage"
doc="$stage/usr/share/doc/tlsboot"
install -D -m 0755 "$exe" "$stage/usr/bin/tlsboot"
for unit in tlsboot.service tlsboot@.service tlsboot-approve.service haproxy.service.d/tlsboot.conf keepalived.service.d/tlsboot.conf; do
  install -D -m 0644 "systemd/$unit" "$stage/lib/systemd/system/$unit"
done
while IFS= read -r f; do install -D -m 0644 "$f" "$doc/$f"; done < <(find examples -type f | sort)
install -D -m 0644 packaging/debian/copyright "$doc/copyright"
gzip -9n < packaging/debian/changelog > "$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"
install -D -m 0644 packaging/debian/lintian-overrides "$stage/usr/share/lintian/overrides/tlsboot"
mkdir -p "$stage/usr/share/man/man1"
gzip -9n < packaging/debian/tlsboot.1 > "$stage/usr/share/man/man1/tlsboot.1.gz"
chmod 0644 "$stage/usr/share/man/man1/tlsboot.1.gz"
# Configuration and tokens: readable by root and the adm group only.
install -d -m 0750 "$stage/etc/tlsboot"

install -d -m 0755 "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" packaging/debian/control > "$stage/DEBIAN/control"
for script in postinst postrm; do install -m 0755 "packaging/debian/$script" "$stage/DEBIAN/$script"; done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums"

out="dist/tlsboot_${version}_$arch.deb"
# xz at level 3: within 3 % of the default level's size, in a third of the time.
dpkg-deb --root-owner-group -Zxz -z3 --build "$stage" "$out.partial" >/dev/null
mv "$out.partial" "$out"
echo "$out"
