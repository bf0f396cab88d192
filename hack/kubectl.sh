#!/usr/bin/env bash
# Provides kubectl 1.20 (the version of the local control plane, with its built-in kustomize
# v2.0.3, the oldest a user of deploy/ may have) and prints its path (stdout, last line).
#
# Order of preference: $KUBECTL if executable; the cache under
# ${XDG_CACHE_HOME:-~/.cache}/wasm-reconciler/kubectl-<version>/kubectl; else Debian bookworm's
# `kubernetes-client` package, downloaded and unpacked into that cache (not installed, so it never
# clashes with another kubectl on the machine).
set -euo pipefail

VERSION=1.20.2
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/wasm-reconciler"
DIR="$CACHE_ROOT/kubectl-$VERSION"
say() { printf '[kubectl] %s\n' "$*" >&2; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -n "${KUBECTL:-}" ] && [ -x "$KUBECTL" ]; then
  echo "$KUBECTL"
  exit 0
fi
if [ -x "$DIR/kubectl" ]; then
  echo "$DIR/kubectl"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/kubectl.lock"
flock 9
if [ -x "$DIR/kubectl" ]; then echo "$DIR/kubectl"; exit 0; fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# `apt-get download` writes as the invoking user into the current folder.
chmod 777 "$WORK"
if ! (cd "$WORK" && apt-get download -qq kubernetes-client >/dev/null 2>&1); then
  say "apt-get update"
  sudo_if_needed apt-get update -qq
  (cd "$WORK" && apt-get download -qq kubernetes-client >/dev/null 2>&1)
fi
deb=$(ls "$WORK"/kubernetes-client_*.deb | head -n1)
say "unpacking $(basename "$deb")"
dpkg-deb -x "$deb" "$WORK/root"
mkdir -p "$DIR"
cp "$WORK/root/usr/bin/kubectl" "$DIR/kubectl.tmp"
mv "$DIR/kubectl.tmp" "$DIR/kubectl"
say "kubectl $("$DIR/kubectl" version --client --short 2>/dev/null || true) cached in $DIR"
echo "$DIR/kubectl"
