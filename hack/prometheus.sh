#!/usr/bin/env bash
# Provides Prometheus and promtool (Debian bookworm's `prometheus` package, 2.42) for the tests of
# deploy/monitoring/, and prints the folder holding both (stdout, last line).
#
# Order of preference: $PROMETHEUS_DIR if it holds both; the cache under
# ${XDG_CACHE_HOME:-~/.cache}/wasm-reconciler/prometheus-<version>/; else the Debian package,
# downloaded and unpacked into that cache (not installed: no service is started, nothing clashes
# with a Prometheus already on the machine).
set -euo pipefail

VERSION=2.42
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/wasm-reconciler"
DIR="$CACHE_ROOT/prometheus-$VERSION"
say() { printf '[prometheus] %s\n' "$*" >&2; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
have() { [ -x "$1/prometheus" ] && [ -x "$1/promtool" ]; }

if [ -n "${PROMETHEUS_DIR:-}" ] && have "$PROMETHEUS_DIR"; then
  echo "$PROMETHEUS_DIR"
  exit 0
fi
if have "$DIR"; then
  echo "$DIR"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/prometheus.lock"
flock 9
if have "$DIR"; then echo "$DIR"; exit 0; fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# `apt-get download` writes as the invoking user into the current folder.
chmod 777 "$WORK"
if ! (cd "$WORK" && apt-get download -qq prometheus >/dev/null 2>&1); then
  say "apt-get update"
  sudo_if_needed apt-get update -qq
  (cd "$WORK" && apt-get download -qq prometheus >/dev/null 2>&1)
fi
deb=$(ls "$WORK"/prometheus_*.deb | head -n1)
say "unpacking $(basename "$deb")"
dpkg-deb -x "$deb" "$WORK/root"
mkdir -p "$DIR.tmp"
cp "$WORK/root/usr/bin/prometheus" "$WORK/root/usr/bin/promtool" "$DIR.tmp/"
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
say "$("$DIR/prometheus" --version 2>&1 | head -n1) cached in $DIR"
echo "$DIR"
