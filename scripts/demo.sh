#!/usr/bin/env bash
# The main job on the embedded defaults: build the Debian 12 template from its recipe, serve it
# from a registry on the filesystem, pull it into a host store, create a container from it in
# milliseconds, run a command inside, and clean up. Run as root after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/bin:$PATH
work=${VZTPL_DEMO_DIR:-/var/tmp/vztpl-demo}
port=${VZTPL_DEMO_PORT:-5000}
mkdir -p "$work"

echo "== build"
vztpl build recipes/debian-12-x86_64.yaml --out "$work/debian-12-x86_64"
vztpl inspect "$work/debian-12-x86_64"

echo "== serve (127.0.0.1:$port, storage $work/registry)"
vztpl serve --listen "127.0.0.1:$port" --storage "fs:$work/registry" > "$work/registry.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

echo "== push"
vztpl push "$work/debian-12-x86_64" "127.0.0.1:$port/debian-12-x86_64"
curl -s "http://127.0.0.1:$port/api/v1/templates/debian-12-x86_64/resolve?range=^1"; echo

echo "== pull, create, exec"
export VZTPL_ROOT=$work/host VZTPL_REGISTRY=127.0.0.1:$port
vztpl pull debian-12-x86_64@^1
vztpl destroy 101 2>/dev/null || true
time vztpl create 101 --ostemplate debian-12-x86_64 --hostname demo101
vztpl exec 101 -- /bin/sh -c 'hostname; head -1 /etc/os-release; cat /etc/machine-id'
vztpl list
vztpl templates
vztpl destroy 101

echo "== export for hosts that take a tarball"
vztpl export "$work/debian-12-x86_64" -o "$work/debian-12-x86_64.tar.gz"
