#!/usr/bin/env bash
# `make demo`: a local control plane, the PotatoHead CRD, the host with the default guest, and the
# sample. Shows what the host created, then keeps everything running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO_DIR=$(mktemp -d -t wasm-reconciler-demo.XXXXXX)
export KUBECONFIG="$DEMO_DIR/kubeconfig"
GUEST=target/wasm32-wasip2/release/guest_potatohead.wasm
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
target/debug/local-control-plane --kubeconfig "$KUBECONFIG" >"$DEMO_DIR/control-plane.out" 2>"$DEMO_DIR/control-plane.log" &
pids+=($!)
for _ in $(seq 1 300); do
  grep -q ready "$DEMO_DIR/control-plane.out" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$DEMO_DIR/control-plane.log"; exit 1; }
  sleep 0.2
done
grep -q ready "$DEMO_DIR/control-plane.out" || { echo "the control plane did not become ready"; exit 1; }

say "installing the PotatoHead CRD (kubectl apply -f deploy/crd/)"
kubectl apply -f deploy/crd/
kubectl wait --for condition=established --timeout=30s crd/potatoheads.podtato.example.com

say "starting reconciler-host run --guest $GUEST (all namespaces; log: $DEMO_DIR/reconciler-host.log)"
target/debug/reconciler-host run --guest "$GUEST" >"$DEMO_DIR/reconciler-host.log" 2>&1 &
pids+=($!)

say "applying the sample (kubectl apply -f deploy/samples/potatohead.yaml)"
kubectl apply -f deploy/samples/potatohead.yaml
for _ in $(seq 1 150); do
  [ -n "$(kubectl get potatohead demo -o jsonpath='{.status.summary}' 2>/dev/null)" ] && break
  kill -0 "${pids[1]}" 2>/dev/null || { cat "$DEMO_DIR/reconciler-host.log"; exit 1; }
  sleep 0.2
done

say "what the host created"
kubectl get deployments,services,configmaps -l app.kubernetes.io/managed-by=wasm-reconciler
say "the PotatoHead and its status"
kubectl get potatoheads
kubectl get potatohead demo -o jsonpath='{.status}' | python3 -m json.tool

cat <<MSG

Everything keeps running until you press Ctrl-C. In another shell:

  export KUBECONFIG=$KUBECONFIG
  kubectl get potatoheads -w                                   # watch the status
  kubectl patch potatohead demo --type merge -p '{"spec":{"tag":"0.3.1"}}'     # new images
  kubectl delete deployment demo-hat                           # comes back
  kubectl patch potatohead demo --type json -p '[{"op":"remove","path":"/spec/parts/5"}]'  # prunes right-leg
  kubectl get potatohead demo -o yaml

There is no kubelet or scheduler here, so pods stay Pending and parts never become ready (0/6).

Host log follows:
MSG
tail -n +1 -f "$DEMO_DIR/reconciler-host.log" &
pids+=($!)
wait "${pids[1]}"
