#!/bin/sh
# Debian 12's skopeo 1.9 (and podman 4.3) are built with sigstore disabled (Debian's
# disable-sigstore.patch: "Debian-local change: sigstore disabled"), so they can neither sign nor
# check sigstore signatures. This fetches Debian 13's skopeo (containers/image with sigstore) and
# the few libraries it needs with apt-get download (a private apt state, the system's untouched),
# unpacks them under DIR, and writes DIR/skopeo, a wrapper that runs it with Debian 13's loader.
# scripts/setup.sh runs it for the tests (test/trust/ use DIR/skopeo, or $VZTPL_TEST_SKOPEO).
# Safe to run again: an existing DIR/skopeo that answers is kept.
set -eu
DIR=${1:-/opt/vztpl-test/skopeo-sigstore}
if [ -x "$DIR/skopeo" ] && "$DIR/skopeo" --version >/dev/null 2>&1; then
  "$DIR/skopeo" --version
  exit 0
fi
mkdir -p "$DIR/apt/lists/partial" "$DIR/debs" "$DIR/root"
DIR=$(cd "$DIR" && pwd)
echo "deb http://deb.debian.org/debian trixie main" > "$DIR/apt/sources.list"
O="-o APT::Sandbox::User=root -o Dir::Etc::sourcelist=$DIR/apt/sources.list -o Dir::Etc::sourceparts=/nonexistent -o Dir::State::Lists=$DIR/apt/lists -o Dir::Cache::pkgcache=$DIR/apt/pkgcache.bin -o Dir::Cache::srcpkgcache=$DIR/apt/srcpkgcache.bin"
apt-get -q $O update >/dev/null
cd "$DIR/debs"
apt-get -q $O download skopeo libc6 libgpgme11t64 libassuan9 libgpg-error0 libsqlite3-0 >/dev/null
for deb in *.deb; do dpkg -x "$deb" "$DIR/root"; done
LIB="$DIR/root/usr/lib/x86_64-linux-gnu"
cat > "$DIR/skopeo" <<WRAP
#!/bin/sh
exec "$LIB/ld-linux-x86-64.so.2" --library-path "$LIB" "$DIR/root/usr/bin/skopeo" "\$@"
WRAP
chmod +x "$DIR/skopeo"
"$DIR/skopeo" --version
