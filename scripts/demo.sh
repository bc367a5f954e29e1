#!/usr/bin/env bash
# The main job on the embedded defaults: build the Debian 12 template from its recipe, show it,
# and export the flattened tarball an OpenVZ host's template cache takes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/bin:$PATH
out=${VZTPL_DEMO_OUT:-out}
vztpl build recipes/debian-12-x86_64.yaml --out "$out/debian-12-x86_64"
vztpl inspect "$out/debian-12-x86_64"
vztpl export "$out/debian-12-x86_64" -o "$out/debian-12-x86_64.tar.gz"
echo "skopeo sees it too:"
skopeo inspect "oci:$out/debian-12-x86_64" | head -12
