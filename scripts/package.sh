#!/usr/bin/env bash
# Builds the release binary (Swift runtime linked statically: it needs only libc, libpq and
# libxml2 at run time) and packages it with its man pages and bash/zsh/fish completions:
#   dist/pgpreflight-<version>-linux-x86_64.tar.gz
#   dist/pgpreflight_<version>_amd64.deb   (Depends: libpq5, libxml2)
# The rules are compiled into the binary. scripts/check-package.sh installs the .deb and tries it.
# PGPREFLIGHT_SCRATCH sets SwiftPM's build folder (default .build-release).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=${PGPREFLIGHT_SCRATCH:-.build-release}
version=$(sed -n 's/^public let toolVersion = "\(.*\)"$/\1/p' Sources/Validation/Model.swift)
[ -n "$version" ] || { echo "package: no toolVersion in Sources/Validation/Model.swift" >&2; exit 2; }
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)

# The commit goes into the binary through a generated source file, put back when the build ends.
buildinfo=Sources/pgpreflight/BuildInfo.swift
saved=$(mktemp)
cp "$buildinfo" "$saved"
restore() { cp "$saved" "$buildinfo"; rm -f "$saved"; }
trap restore EXIT
sed -i "s/^let buildCommit = .*/let buildCommit = \"$commit\"/" "$buildinfo"
echo "package: building pgpreflight $version ($commit), release, static Swift runtime" >&2
swift build -q -c release --static-swift-stdlib --product pgpreflight --scratch-path "$scratch"
restore; trap - EXIT
binary=$scratch/release/pgpreflight

# Man pages from the ArgumentParser definitions (swift-argument-parser's generate-manual tool,
# built from the package's own checkout: no network).
swift build -q -c release --product generate-manual --scratch-path "$scratch"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/deb
mkdir -p "$root/usr/bin" "$root/usr/share/man/man1" "$root/usr/share/bash-completion/completions" \
  "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/doc/pgpreflight"
install -m 755 "$binary" "$root/usr/bin/pgpreflight"
strip "$root/usr/bin/pgpreflight" 2>/dev/null || true
"$scratch/release/generate-manual" "$root/usr/bin/pgpreflight" --multi-page --date "$(date -u +%Y-%m-%d)" \
  --authors "the pgpreflight authors" --output-directory "$root/usr/share/man/man1"
gzip -9n "$root"/usr/share/man/man1/*.1
"$root/usr/bin/pgpreflight" --generate-completion-script bash > "$root/usr/share/bash-completion/completions/pgpreflight"
"$root/usr/bin/pgpreflight" --generate-completion-script zsh > "$root/usr/share/zsh/vendor-completions/_pgpreflight"
"$root/usr/bin/pgpreflight" --generate-completion-script fish > "$root/usr/share/fish/vendor_completions.d/pgpreflight.fish"
cp README.md "$root/usr/share/doc/pgpreflight/README.md"

mkdir -p dist
tardir=pgpreflight-$version-linux-x86_64
mkdir -p "$stage/$tardir"
cp -R "$root/usr/." "$stage/$tardir/"
tar -C "$stage" -czf "dist/$tardir.tar.gz" "$tardir"

mkdir -p "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: pgpreflight
Version: $version
Architecture: amd64
Maintainer: pgpreflight authors <pgpreflight@localhost>
Depends: libc6, libstdc++6, libgcc-s1, libpq5, libxml2, libsqlite3-0
Section: database
Priority: optional
Installed-Size: $(du -sk "$root/usr" | cut -f1)
Description: PostgreSQL pre-migration validation and embedded migrator
 pgpreflight tells whether PostgreSQL databases can move to a managed server
 (rules for extensions, roles, replication, versions, …), and moves them,
 offline or online. Built from commit $commit.
CONTROL
dpkg-deb --build --root-owner-group "$root" "dist/pgpreflight_${version}_amd64.deb" >/dev/null
echo "package: dist/$tardir.tar.gz dist/pgpreflight_${version}_amd64.deb" >&2
