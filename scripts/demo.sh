#!/usr/bin/env bash
# The main job on the embedded defaults: build the Debian 12 template from its recipe, serve it
# from a registry on the filesystem, push it signed, pull it on a host that requires the
# signature, create a container from it in milliseconds, run a command inside, snapshot and roll
# back, and clean up. Run as root after scripts/setup.sh.
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

echo "== push, signed (a cosign key pair; the SBOM goes beside the version)"
export VZTPL_KEY_PASSWORD=${VZTPL_KEY_PASSWORD:-demo-password}
[ -f "$work/demo.key" ] || vztpl key generate "$work/demo"
vztpl push "$work/debian-12-x86_64" "127.0.0.1:$port/debian-12-x86_64" --sign-key "$work/demo.key"
curl -s "http://127.0.0.1:$port/api/v1/templates/debian-12-x86_64/resolve?range=^1"; echo
vztpl verify "127.0.0.1:$port/debian-12-x86_64:1.0.0" --key "$work/demo.pub"

echo "== pull (the host requires the key), create, exec"
export VZTPL_ROOT=$work/host VZTPL_REGISTRY=127.0.0.1:$port
printf 'trust:\n  - match: "127.0.0.1:%s/**"\n    keys: [%s]\n' "$port" "$work/demo.pub" > "$work/trust.yaml"
vztpl destroy 101 2>/dev/null || true
vztpl pull debian-12-x86_64@^1 --trust-policy "$work/trust.yaml"
time vztpl create 101 --ostemplate debian-12-x86_64 --hostname demo101 --trust-policy "$work/trust.yaml"
vztpl exec 101 -- /bin/sh -c 'hostname; head -1 /etc/os-release; cat /etc/machine-id'
vztpl list
vztpl templates

echo "== snapshot, change, rollback"
vztpl snapshot 101 --name clean
vztpl exec 101 -- /bin/sh -c 'rm -rf /usr/share/doc; ls /usr/share | wc -l'
vztpl rollback 101 clean --force
vztpl exec 101 -- /bin/sh -c 'ls -d /usr/share/doc'
vztpl destroy 101

echo "== export for hosts that take a tarball"
vztpl export "$work/debian-12-x86_64" -o "$work/debian-12-x86_64.tar.gz"
