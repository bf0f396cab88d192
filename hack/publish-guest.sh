#!/usr/bin/env bash
# Publishes guests into the cluster: adds or replaces them in the ConfigMap the operator's
# Deployment mounts as its folder of guests (deploy/manager/deployment.yaml), one key NAME.wasm
# per guest. The kubelet then updates the mounted folder and the running host starts a new guest,
# or hot-swaps a replaced one: the logic changes without a rollout. Other guests in the ConfigMap
# are left as they are.
#
#   hack/publish-guest.sh GUEST.wasm [NAME=GUEST.wasm ...]   add or replace these guests
#   hack/publish-guest.sh --remove NAME [NAME ...]           remove these guests
#
# NAME is the guest's name in the host (its metrics label and /readyz line); by default the file
# name without `.wasm` and a leading `guest_`, with `_` as `-` (guest_potatohead.wasm: potatohead).
# NAME.candidate publishes a shadow candidate for the guest NAME (docs/rolling-out.md).
# `make publish-guest` builds and publishes both shipped guests.
#
# Each guest's key is written by its own field manager (publish-guest-NAME) with server-side
# apply, so publishing one guest never drops another, and removing one removes only its key.
#
# Environment: NAMESPACE (wasm-reconciler-system), CONFIGMAP (wasm-reconciler-guests), KUBECTL
# (kubectl), and kubectl's usual KUBECONFIG/context.
set -euo pipefail

NAMESPACE=${NAMESPACE:-wasm-reconciler-system}
CONFIGMAP=${CONFIGMAP:-wasm-reconciler-guests}
KUBECTL=${KUBECTL:-kubectl}
# A ConfigMap holds at most 1 MiB (1048576 bytes) of data in all, and binaryData is base64: 4
# bytes per 3. Leave room for the object's metadata.
LIMIT=$(( 1048576 - 16384 ))

fail() { echo "publish-guest: $*" >&2; exit 1; }
[ $# -gt 0 ] || fail "name at least one guest file (or --remove NAME); see the top of $0"

# Applies the ConfigMap as the guest's own field manager: with `--from-file` the guest's key, with
# nothing the empty set (its key then goes away).
apply_as() {
  local name=$1; shift
  "$KUBECTL" create configmap "$CONFIGMAP" --namespace "$NAMESPACE" "$@" --dry-run=client -o yaml |
    "$KUBECTL" apply --server-side --force-conflicts --field-manager="publish-guest-$name" -f - >&2
}

if [ "$1" = --remove ]; then
  shift
  [ $# -gt 0 ] || fail "--remove needs the names of the guests to remove"
  for name in "$@"; do
    apply_as "$name"
    echo "publish-guest: removed guest $name from ConfigMap $NAMESPACE/$CONFIGMAP; running hosts stop its reconciler (its parents and children stay)" >&2
  done
  exit 0
fi

# Base64 bytes each key of the ConfigMap holds now (none when it does not exist yet).
existing=$("$KUBECTL" get configmap "$CONFIGMAP" --namespace "$NAMESPACE" --ignore-not-found \
  -o go-template='{{range $k, $v := .binaryData}}{{$k}} {{len $v}}{{"\n"}}{{end}}{{range $k, $v := .data}}{{$k}} {{len $v}}{{"\n"}}{{end}}')

declare -A size_of
while read -r key size; do
  [ -n "$key" ] && size_of[$key]=$size
done <<<"$existing"

names=()
files=()
for arg in "$@"; do
  if [[ $arg == *=* ]]; then
    name=${arg%%=*}
    file=${arg#*=}
  else
    file=$arg
    name=$(basename "$file" .wasm)
    name=${name#guest_}
    name=${name//_/-}
  fi
  # NAME.candidate: a shadow candidate for the guest NAME (docs/rolling-out.md).
  [[ $name =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.candidate)?$ ]] ||
    fail "$name is not a usable guest name (lower-case letters, digits and '-', or NAME.candidate for a shadow candidate); give one as NAME=$file"
  [ -f "$file" ] || fail "$file does not exist; build it first (make guest)"
  [ "$(head -c 4 "$file" | od -An -tx1 | tr -d ' \n')" = "0061736d" ] ||
    fail "$file is not a WebAssembly file"
  size_of[$name.wasm]=$(( ($(stat -c %s "$file") + 2) / 3 * 4 ))
  names+=("$name")
  files+=("$file")
done

total=0
for key in "${!size_of[@]}"; do total=$(( total + size_of[$key] )); done
if [ "$total" -gt "$LIMIT" ]; then
  echo "publish-guest: the ConfigMap would hold $total bytes of base64; it holds at most $LIMIT." >&2
  echo "  Keys and their sizes with this publish:" >&2
  for key in "${!size_of[@]}"; do echo "    $key ${size_of[$key]}" >&2; done
  echo "  Remove a guest (--remove NAME), shrink them (release profile: opt-level \"s\", LTO," >&2
  echo "  strip), or ship them in an OCI image volume instead (deploy/oci-guest)." >&2
  exit 1
fi

for i in "${!names[@]}"; do
  apply_as "${names[$i]}" --from-file="${names[$i]}.wasm=${files[$i]}"
  echo "publish-guest: ${files[$i]} is now guest ${names[$i]} (key ${names[$i]}.wasm) of ConfigMap $NAMESPACE/$CONFIGMAP; running hosts start or swap it once the kubelet updates the mount" >&2
done
