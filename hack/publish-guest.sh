#!/usr/bin/env bash
# Publishes a guest into the cluster: creates or updates the ConfigMap the operator's Deployment
# mounts (deploy/manager/deployment.yaml). The kubelet then updates the mounted file, and the
# running host hot-swaps the guest: the logic changes without a rollout.
#
#   hack/publish-guest.sh [GUEST.wasm]        (make publish-guest builds and publishes the default)
#
# Environment: NAMESPACE (wasm-reconciler-system), CONFIGMAP (wasm-reconciler-guest), KUBECTL
# (kubectl), and kubectl's usual KUBECONFIG/context.
set -euo pipefail

GUEST=${1:-target/wasm32-wasip2/release/guest_potatohead.wasm}
NAMESPACE=${NAMESPACE:-wasm-reconciler-system}
CONFIGMAP=${CONFIGMAP:-wasm-reconciler-guest}
KUBECTL=${KUBECTL:-kubectl}
# A ConfigMap holds at most 1 MiB (1048576 bytes) in total, and binaryData is base64: 4 bytes
# per 3. Leave room for the object's metadata.
LIMIT=$(( (1048576 - 16384) / 4 * 3 ))

if [ ! -f "$GUEST" ]; then
  echo "publish-guest: $GUEST does not exist; build it first (make guest)" >&2
  exit 1
fi
if [ "$(head -c 4 "$GUEST" | od -An -tx1 | tr -d ' \n')" != "0061736d" ]; then
  echo "publish-guest: $GUEST is not a WebAssembly file" >&2
  exit 1
fi
size=$(stat -c %s "$GUEST")
if [ "$size" -gt "$LIMIT" ]; then
  echo "publish-guest: $GUEST is $size bytes; a ConfigMap holds at most $LIMIT bytes of guest." >&2
  echo "  Shrink it (release profile: opt-level \"s\", LTO, strip) or ship it in an OCI image" >&2
  echo "  volume instead (deploy/oci-guest)." >&2
  exit 1
fi
# Server-side apply: no last-applied annotation (which would not fit a guest's size), and the
# ConfigMap is created or updated alike.
"$KUBECTL" create configmap "$CONFIGMAP" --namespace "$NAMESPACE" \
    --from-file=guest.wasm="$GUEST" --dry-run=client -o yaml |
  "$KUBECTL" apply --server-side --force-conflicts --field-manager=publish-guest -f - >&2
echo "publish-guest: $GUEST ($size bytes) is now ConfigMap $NAMESPACE/$CONFIGMAP; running hosts swap to it once the kubelet updates the mount" >&2
