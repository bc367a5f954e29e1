#!/usr/bin/env bash
# Installs the `vztpl` command from this checkout as a copy (a packed tarball, like any npm
# package), not a link into the checkout: it keeps working when the clone is moved or deleted,
# and running this again from a newer clone upgrades it. Usage: install-cli.sh [PREFIX]
# (default /usr/local; the command lands in PREFIX/bin/vztpl). Needs the dev dependencies
# (npm ci) to build.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
pack=$(mktemp -d)
trap 'rm -rf "$pack"' EXIT
npm run --silent build
# What package.json's "files" names: dist/ and recipes/.
npm pack --silent --pack-destination "$pack" >/dev/null
npm install -g --prefix "$prefix" --no-audit --no-fund --prefer-offline "$pack"/vztpl-*.tgz >/dev/null
installed=$(readlink -f "$prefix/bin/vztpl")
case "$installed" in
  "$PWD"/*) echo "install-cli: $prefix/bin/vztpl points into the checkout ($installed)" >&2; exit 1 ;;
esac
echo "install-cli: vztpl $("$prefix/bin/vztpl" --version) installed as $prefix/bin/vztpl"
