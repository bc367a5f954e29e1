#!/usr/bin/env bash
# Installs everything vztpl and its tests need on a Debian 12 host (run as root):
# the host tools (Debian packages), Node.js 24 LTS from the npm registry, the npm dependencies,
# and the `vztpl` command itself (a copy: scripts/install-cli.sh). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # builder: bootstrapping and packing
  debootstrap mmdebstrap dnf rpm createrepo-c zstd xz-utils gzip tar attr util-linux
  # host: the OCI runtime that runs containers (crun refuses hybrid cgroup v1 hosts)
  runc
  # tests: RPM fixture repository and OCI clients
  rpm2cpio busybox-static skopeo podman
  # tests: the web catalog in a real browser
  chromium
  # tests: a local apt repository for publish (apt-ftparchive)
  apt-utils
  # tests: the host cache against a plain OCI registry (CNCF Distribution, also the peer
  # bench/registry.ts measures vztpl serve against), reflinks on a loop-mounted XFS (mkfs.xfs), filefrag
  docker-registry xfsprogs e2fsprogs
  # tests: a throwaway Ceph RGW as the S3 server (test/services/rgw.ts); ceph-common has the
  # ceph, ceph-authtool and radosgw-admin CLIs
  radosgw ceph-mon ceph-osd ceph-common
  ca-certificates curl
  # tests: a throwaway CA for the TLS tests
  openssl
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The docker-registry package enables a registry on :5000 (vztpl serve's usual port); the tests
# start their own on a free port.
if command -v systemctl >/dev/null && systemctl is-enabled --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry || true
fi

# Node 24 LTS: Debian 12's Node is past its end of life. The npm registry carries Node itself;
# npm comes from Debian when the machine has none yet.
if ! command -v npm >/dev/null; then
  echo "setup: installing npm from Debian's packages (to fetch Node.js 24)"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 24 ]; then
  echo "setup: installing Node.js 24 into /usr/local"
  npm install -g --prefix /usr/local --allow-scripts=node node@24 >/dev/null 2>&1 ||
    npm install -g --prefix /usr/local node@24
  hash -r
fi
export PATH=/usr/local/bin:$PATH
echo "setup: node $(node --version)"

# tests: Debian 12's skopeo is built without sigstore; the signature tests use Debian 13's,
# unpacked under /opt/vztpl-test (the system's packages stay as they are).
sigstore_skopeo=$(bash scripts/skopeo-sigstore.sh /opt/vztpl-test/skopeo-sigstore | tail -1)
echo "setup: $sigstore_skopeo (with sigstore) for the signature tests"

npm ci --no-audit --no-fund
npm run build
bash scripts/install-cli.sh /usr/local
