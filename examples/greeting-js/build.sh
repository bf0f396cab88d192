#!/usr/bin/env bash
# Builds the Greeting guests: guest.js + ../../wit/0.1.0 -> a contract 0.1.0 component (it stays
# 0.1 on purpose: the tests prove a 0.1 guest in JavaScript keeps running), and guest-0.2.js +
# ../../wit -> a contract 0.2.0 component (configuration, related objects, Events).
#   examples/greeting-js/build.sh [OUT]   (default: target/examples/greeting_js.wasm; the 0.2
#   guest goes beside it as greeting_js_0_2.wasm)
# Needs node and npm; npm installs the pinned componentize-qjs (npm's cache makes reruns
# fast). --sync: the host calls guests synchronously (no component-model async).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$ROOT/target/examples/greeting_js.wasm}
OUT_0_2=$(dirname "$OUT")/greeting_js_0_2.wasm
cd "$HERE"
if ! command -v npm >/dev/null; then
  # Debian's nodejs (18 in bookworm) is new enough (componentize-qjs needs >= 18).
  echo "installing Debian packages: nodejs npm" >&2
  sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x node_modules/.bin/componentize-qjs ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # Not `npm ci`: componentize-qjs 0.4.5 lists optional platform packages that were never
  # published, which `npm ci` refuses as a lock mismatch; `install --no-save` follows the lock
  # and leaves it unchanged.
  npm install --no-audit --no-fund --no-save --loglevel=error >&2
fi
mkdir -p "$(dirname "$OUT")"
node_modules/.bin/componentize-qjs --sync --wit "$ROOT/wit/0.1.0" --world reconciler --js guest.js -o "$OUT" >&2
echo "built $OUT ($(stat -c %s "$OUT") bytes)" >&2
node_modules/.bin/componentize-qjs --sync --wit "$ROOT/wit" --world reconciler --js guest-0.2.js -o "$OUT_0_2" >&2
echo "built $OUT_0_2 ($(stat -c %s "$OUT_0_2") bytes)" >&2
