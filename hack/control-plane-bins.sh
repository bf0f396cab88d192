#!/usr/bin/env bash
# Provides kube-apiserver, kube-controller-manager and etcd for the local control plane used by
# `make demo` and the end-to-end tests, and prints the folder that holds them (on stdout, last line).
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS, if it holds kube-apiserver and etcd (the envtest convention);
#   2. the cache under ${XDG_CACHE_HOME:-~/.cache}/wasm-reconciler/k8s-<version>/bin;
#   3. a one-time build from Debian bookworm's `kubernetes` source package (no Docker, no network
#      beyond the Debian archive), which takes several minutes on two cores, then cached as in 2.
# Why a source build: Debian does not package kube-apiserver as a binary (see
# ../shared/LOCAL-CONTROL-PLANE.md for the facts this script relies on).
set -euo pipefail

K8S_VERSION=1.20.2
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/wasm-reconciler"
BIN_DIR="$CACHE_ROOT/k8s-$K8S_VERSION/bin"

say() { printf '[control-plane] %s\n' "$*" >&2; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Installs the Debian packages given that are missing (apt-get update once, only when needed).
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "${APT_UPDATED:-}" ]; then
    say "apt-get update"
    sudo_if_needed apt-get update -qq
    APT_UPDATED=1
  fi
  say "installing Debian packages: ${missing[*]}"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Needed at run time by the test harness whichever binaries are used: openssl makes the
# service-account signing key.
ensure_packages openssl

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  if [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
    say "using binaries from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
    echo "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  say "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks kube-apiserver or etcd; falling back to the cache"
fi

ensure_packages etcd-server
have_all() { [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ] && [ -x "$BIN_DIR/etcd" ]; }
if have_all; then
  echo "$BIN_DIR"
  exit 0
fi

# One build at a time: `make test` and `make demo` may race on a fresh machine.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/build.lock"
flock 9
if have_all; then echo "$BIN_DIR"; exit 0; fi

# --- Debian packages for the build ----------------------------------------------------------
SRC_LIST=/etc/apt/sources.list.d/wasm-reconciler-src.sources
if [ ! -f "$SRC_LIST" ]; then
  say "adding a deb-src entry for bookworm ($SRC_LIST)"
  sudo_if_needed tee "$SRC_LIST" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  say "apt-get update (for the new source entry)"
  sudo_if_needed apt-get update -qq
  APT_UPDATED=1
fi
ensure_packages golang-go rsync jq golang-github-modern-go-reflect2-dev dpkg-dev

# --- Source ----------------------------------------------------------------------------------
WORK="$CACHE_ROOT/k8s-$K8S_VERSION/src"
TREE="$WORK/kubernetes"
if [ ! -f "$TREE/go.mod" ]; then
  rm -rf "$WORK"; mkdir -p "$WORK"
  say "downloading the Debian 'kubernetes' source package (~34 MB)"
  (cd "$WORK" && apt-get source --download-only -qq kubernetes/bookworm >/dev/null)
  orig=$(ls "$WORK"/kubernetes_*.orig.tar.* | head -n1)
  say "unpacking $(basename "$orig")"
  mkdir -p "$TREE"
  tar -xf "$orig" -C "$TREE" --strip-components=1
fi

# Kubernetes 1.20 vendors modern-go/reflect2 v1.0.1, which crashes under Go >= 1.18 on the first
# custom-resource create (SIGSEGV in json-iterator). Swap in Debian's reflect2 1.0.2.
if grep -q 'reflect2 v1.0.1' "$TREE/go.mod"; then
  say "patching vendored modern-go/reflect2 1.0.1 -> 1.0.2 (Go >= 1.18 crash fix)"
  rm -rf "$TREE/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$TREE/vendor/github.com/modern-go/reflect2"
  rm -f "$TREE/vendor/github.com/modern-go/reflect2/go.mod"
  sed -i 's#github.com/modern-go/reflect2 v1.0.1#github.com/modern-go/reflect2 v1.0.2#' "$TREE/go.mod" "$TREE/vendor/modules.txt"
  sed -i '/github.com\/modern-go\/reflect2 v1.0.1/d' "$TREE/go.sum" || true
fi

# --- Build -----------------------------------------------------------------------------------
build() {
  local what=$1 minutes=$2
  if [ -x "$TREE/_output/bin/$what" ]; then return; fi
  say "building $what from source: one time only, about $minutes min on 2 cores (log: $WORK/$what.log)"
  local start=$SECONDS
  (cd "$TREE" && env HOME="$WORK/home" GOFLAGS=-mod=vendor CGO_ENABLED=0 make WHAT="cmd/$what" >"$WORK/$what.log" 2>&1) &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    kill -0 "$pid" 2>/dev/null && say "  still building $what ($((SECONDS - start)) s so far)"
  done
  if ! wait "$pid"; then
    say "building $what failed; last lines of $WORK/$what.log:"
    tail -n 30 "$WORK/$what.log" >&2
    exit 1
  fi
  say "built $what in $((SECONDS - start)) s"
}
build kube-apiserver 6
build kube-controller-manager 2

mkdir -p "$BIN_DIR"
cp "$TREE/_output/bin/kube-apiserver" "$TREE/_output/bin/kube-controller-manager" "$BIN_DIR/"
ln -sf /usr/bin/etcd "$BIN_DIR/etcd"
# The source tree and Go build cache are large and no longer needed.
rm -rf "$WORK"
say "control-plane binaries cached in $BIN_DIR"
echo "$BIN_DIR"
