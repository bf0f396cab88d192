# The front door. `make demo` and `make test` are the two commands a newcomer needs; both install
# what they need on a fresh machine (wasm target, Debian packages, control-plane binaries).

CARGO        ?= cargo
GUEST_TARGET := wasm32-wasip2
GUEST_WASM   := target/$(GUEST_TARGET)/release/guest_potatohead.wasm
# The guest for the seed operator's own API (crd.demo.com/v1alpha1 PodTatoHead).
PODTATO_WASM := target/$(GUEST_TARGET)/release/guest_podtatohead.wasm

.PHONY: help deps guest guest-component test-guests example-guests build release crd test demo lint fmt clean bench bench-hot-swap bench-scale bench-guest bench-density bench-related bench-rollout publish-guest

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

deps: ## Install the wasm target, the local control plane (one-time build), kubectl and Prometheus (cached in ~/.cache)
	@echo "==> checking the Rust target $(GUEST_TARGET)"
	@rustup target list --installed | grep -qx $(GUEST_TARGET) || rustup target add $(GUEST_TARGET)
	@echo "==> checking the local control plane binaries (the first run builds them: several minutes)"
	@hack/control-plane-bins.sh >/dev/null
	@hack/kubectl.sh >/dev/null
	@hack/prometheus.sh >/dev/null

guest: ## Build the guest components (release, wasm32-wasip2): the default guest and the PodTatoHead one
	@echo "==> building the guests $(GUEST_WASM) and $(PODTATO_WASM)"
	@rustup target list --installed | grep -qx $(GUEST_TARGET) || rustup target add $(GUEST_TARGET)
	$(CARGO) build -p guest-potatohead -p guest-podtatohead --target $(GUEST_TARGET) --release
	@ls -l $(GUEST_WASM) $(PODTATO_WASM) | awk '{print "    guest size: " $$5 " bytes  " $$9}'

# cargo-component is the other way to build guests (see docs/writing-a-guest.md); installed once
# into ~/.cargo/bin (about 10 minutes on two cores), then reused.
CARGO_COMPONENT_VERSION := 0.21.1
guest-component: ## Build the default guest with cargo-component as well (target/wasm32-wasip1/…)
	@command -v cargo-component >/dev/null || { echo "==> installing cargo-component $(CARGO_COMPONENT_VERSION) (one time, ~10 min)"; $(CARGO) install cargo-component --locked --version $(CARGO_COMPONENT_VERSION); }
	$(CARGO) component build -p guest-potatohead --release

test-guests: ## Build the test guests under tests/guests/ (release, wasm32-wasip2)
	@echo "==> building the test guests (tests/guests/)"
	$(CARGO) build -p potatohead-v2-guest -p hostile-guest -p configmap-echo-guest -p serviceaccount-echo-guest -p ingress-twice-guest -p widget-maker-guest --target $(GUEST_TARGET) --release
	@# A guest of contract 0.2 builds on its own: with the 0.1 guests above, cargo would unify
	@# guest-kit's contract-0-1 feature into it and make it a 0.1 guest.
	$(CARGO) build -p wandering-requirements-guest --target $(GUEST_TARGET) --release

example-guests: ## Build the example guests (examples/: Greeting in Rust and in JavaScript, the cluster-scoped Tenant; needs node and npm)
	$(CARGO) build -p greeting-rust-guest -p tenant-guest --target $(GUEST_TARGET) --release
	examples/greeting-js/build.sh

build: guest test-guests ## Build the guests, the host and the test harness (debug)
	@echo "==> building reconciler-host and the test harness"
	$(CARGO) build -p reconciler-host -p local-control-plane --bins

release: guest ## Build the release host (what the Dockerfile ships) and guest
	$(CARGO) build --release --locked -p reconciler-host
	@ls -l target/release/reconciler-host | awk '{print "    host size: " $$5 " bytes"}'

publish-guest: guest ## Build the guests and add them to the operator's ConfigMap of guests (GUESTS="a.wasm NAME=b.wasm" for others; NAMESPACE, CONFIGMAP, KUBECTL)
	hack/publish-guest.sh $(or $(GUESTS),$(GUEST_WASM) $(PODTATO_WASM))

crd: ## Regenerate deploy/crd/potatohead.yaml and podtatohead.yaml from the Rust spec types
	$(CARGO) run -q -p potatohead-decisions --features crd --bin crdgen > deploy/crd/potatohead.yaml
	$(CARGO) run -q -p guest-podtatohead --features crd --bin podtatohead-crdgen > deploy/crd/podtatohead.yaml

# `cargo test` builds reconciler-host itself (with the test build's features), so the host is not
# built separately here: that would compile wasmtime twice with different feature sets.
test: deps guest guest-component test-guests example-guests ## Run every test: guest unit tests, host tests on the real .wasm, end-to-end tests
	@echo "==> building and running all tests (end-to-end tests start their own kube-apiserver and etcd)"
	$(CARGO) test --workspace --features potatohead-decisions/crd,guest-podtatohead/crd

demo: deps build ## Local control plane + CRD + host + sample; runs until Ctrl-C
	@hack/demo.sh

bench: bench-scale bench-guest bench-density bench-related bench-rollout ## The benchmarks of docs/benchmarks.md: scale, guest overhead, many guests in one host, related objects, rolling out a guest (~25 min once built)

bench-guest: guest ## One reconcile through WebAssembly vs the same logic compiled natively, by phase
	$(CARGO) bench -p reconciler-host --bench guest_vs_native

bench-hot-swap: deps build ## Guest swap latency in a running host (release), with and without the compile cache
	$(CARGO) build --release -p reconciler-host
	RECONCILER_HOST_BIN=$(CURDIR)/target/release/reconciler-host $(CARGO) bench -p e2e --bench hot_swap

bench-scale: deps guest ## The host at scale vs the API server's own limit (release; PARENTS=1000)
	$(CARGO) build --release -p reconciler-host
	RECONCILER_HOST_BIN=$(CURDIR)/target/release/reconciler-host $(CARGO) bench -p e2e --bench scale

bench-related: deps guest ## Related objects at scale: a ConfigMap read by 100 of 1000 PotatoHeads changed, vs the 100 specs changed (release; PARENTS=1000 READERS=100)
	$(CARGO) build --release -p reconciler-host
	RECONCILER_HOST_BIN=$(CURDIR)/target/release/reconciler-host $(CARGO) bench -p e2e --bench related

bench-rollout: deps guest test-guests ## Rolling out a guest: shadow candidate's cost, diff vs kubectl diff --server-side, rollback time (release; PARENTS=1000 KUBECTL_PARENTS=20)
	$(CARGO) build --release -p reconciler-host
	RECONCILER_HOST_BIN=$(CURDIR)/target/release/reconciler-host $(CARGO) bench -p e2e --bench rollout

bench-density: deps guest ## One host serving many guests: memory per added guest, start-up, vs one guest and vs one host per guest (release; GUESTS=20 PARENTS_PER_GUEST=100)
	$(CARGO) build --release -p reconciler-host
	RECONCILER_HOST_BIN=$(CURDIR)/target/release/reconciler-host $(CARGO) bench -p e2e --bench density

lint: ## rustfmt and clippy
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --features potatohead-decisions/crd,guest-podtatohead/crd -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

clean: ## Remove build output (the control-plane cache in ~/.cache stays)
	$(CARGO) clean
