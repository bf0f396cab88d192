#!/usr/bin/env bash
# `make demo`: a local control plane, the CRDs of both shipped guests, one host serving both from a
# folder of guests (PotatoHead, and the seed operator's own PodTatoHead), and a sample of each.
# Shows what the host created, prints commands to try, then keeps everything running until Ctrl-C.
#
# Uses the project's kubectl (1.20.2, the control plane's version, from hack/kubectl.sh), never
# whichever kubectl is on the PATH. With DEMO_NONINTERACTIVE=1 it waits for standard input to
# close instead of Ctrl-C and does not follow the host's log: how `make test` runs it
# (tests/tests/demo.rs), together with every command it prints.
#
# Overrides (for tests and other build layouts): RECONCILER_HOST_BIN, LOCAL_CONTROL_PLANE_BIN,
# POTATOHEAD_GUEST_WASM, PODTATOHEAD_GUEST_WASM, KUBECTL, DEMO_METRICS_ADDRESS (default
# 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."

HOST_BIN=${RECONCILER_HOST_BIN:-target/debug/reconciler-host}
CONTROL_PLANE_BIN=${LOCAL_CONTROL_PLANE_BIN:-target/debug/local-control-plane}
GUEST=${POTATOHEAD_GUEST_WASM:-target/wasm32-wasip2/release/guest_potatohead.wasm}
PODTATO_GUEST=${PODTATOHEAD_GUEST_WASM:-target/wasm32-wasip2/release/guest_podtatohead.wasm}
METRICS_ADDRESS=${DEMO_METRICS_ADDRESS:-127.0.0.1:8080}
KUBECTL=$(hack/kubectl.sh | tail -n1)
kubectl() { "$KUBECTL" "$@"; }

for built in "$HOST_BIN" "$CONTROL_PLANE_BIN" "$GUEST" "$PODTATO_GUEST"; do
  [ -e "$built" ] || { echo "$built is missing: run \`make demo\` (it builds everything first)" >&2; exit 1; }
done

DEMO_DIR=$(mktemp -d -t wasm-reconciler-demo.XXXXXX)
export KUBECONFIG="$DEMO_DIR/kubeconfig"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

pids=()
cleanup() {
  say "stopping the host and the control plane"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DEMO_DIR"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

say "starting etcd, kube-apiserver and kube-controller-manager on loopback"
"$CONTROL_PLANE_BIN" --kubeconfig "$KUBECONFIG" >"$DEMO_DIR/control-plane.out" 2>"$DEMO_DIR/control-plane.log" &
pids+=($!)
for _ in $(seq 1 300); do
  grep -q ready "$DEMO_DIR/control-plane.out" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$DEMO_DIR/control-plane.log"; exit 1; }
  sleep 0.2
done
grep -q ready "$DEMO_DIR/control-plane.out" || { echo "the control plane did not become ready"; exit 1; }

say "installing the CRDs (kubectl apply -k deploy/crd: PotatoHead and PodTatoHead)"
kubectl apply -k deploy/crd
kubectl wait --for condition=established --timeout=30s \
  crd/potatoheads.podtato.example.com crd/podtatoheads.crd.demo.com

# A folder of guests, as the operator's ConfigMap of guests mounts it: one file per guest.
GUESTS="$DEMO_DIR/guests"
mkdir -p "$GUESTS"
cp "$GUEST" "$GUESTS/potatohead.wasm"
cp "$PODTATO_GUEST" "$GUESTS/podtatohead.wasm"
say "starting reconciler-host run --guests $GUESTS (potatohead.wasm, podtatohead.wasm; all namespaces; log: $DEMO_DIR/reconciler-host.log)"
"$HOST_BIN" run --guests "$GUESTS" --metrics-bind-address "$METRICS_ADDRESS" >"$DEMO_DIR/reconciler-host.log" 2>&1 &
pids+=($!)

# Waits until `kubectl get $1 -o jsonpath={.status.summary}` says something.
wait_for_status() {
  for _ in $(seq 1 150); do
    [ -n "$(kubectl get "$@" -o jsonpath='{.status.summary}' 2>/dev/null)" ] && return 0
    kill -0 "${pids[1]}" 2>/dev/null || { cat "$DEMO_DIR/reconciler-host.log"; exit 1; }
    sleep 0.2
  done
  echo "$* got no status within 30 s; the host's log:"; cat "$DEMO_DIR/reconciler-host.log"; exit 1
}

say "applying the samples (kubectl apply -k deploy/samples: a PotatoHead and the talk's PodTatoHead)"
kubectl apply -k deploy/samples
wait_for_status potatohead demo
wait_for_status podtatohead podtatohead-sample

say "what the host created"
kubectl get deployments,services,configmaps -l app.kubernetes.io/managed-by=wasm-reconciler
say "the PotatoHead, the PodTatoHead and the PotatoHead's status"
kubectl get potatoheads,podtatoheads
kubectl get potatohead demo -o yaml | sed -n '/^status:/,$p'

# Every command below is run by tests/tests/demo.rs, which checks that it does what its comment
# says: add a command there when you add one here.
cat <<MSG

In another shell (this kubectl is the control plane's version, 1.20.2):

  export KUBECONFIG=$KUBECONFIG
  export PATH=$(dirname "$KUBECTL"):\$PATH
  kubectl get potatoheads -w                                   # watch the status (Ctrl-C ends it)
  kubectl describe potatohead demo                             # status and the Events the host published
  kubectl patch potatohead demo --type merge -p '{"spec":{"tag":"0.3.1"}}'     # new images
  kubectl create configmap demo-settings --from-literal=GREETING=hello         # settings for every part
  kubectl patch potatohead demo --type merge -p '{"spec":{"configRef":{"name":"demo-settings"}}}'  # every part gets GREETING
  kubectl patch configmap demo-settings -p '{"data":{"GREETING":"bonjour"}}'   # edit it: the parts roll
  kubectl delete deployment demo-hat                           # comes back
  kubectl patch potatohead demo --type json -p '[{"op":"remove","path":"/spec/parts/5"}]'  # prunes right-leg
  kubectl get potatohead demo -o yaml
  kubectl get podtatoheads                                     # the seed operator's API, served by the same host
  kubectl scale deployment podtato-main --replicas=3           # put back to the PodTatoHead's replicaCount (1)

There is no kubelet or scheduler here, so pods stay Pending and parts never become ready (0/6).
MSG

if [ "${DEMO_NONINTERACTIVE:-}" = 1 ]; then
  say "demo running; close standard input to stop"
  cat >/dev/null
  exit 0
fi
echo "Everything keeps running until you press Ctrl-C. Host log follows:"
tail -n +1 -f "$DEMO_DIR/reconciler-host.log" &
pids+=($!)
wait "${pids[1]}"
