#!/usr/bin/env bash
# The demo `make demo` runs against the local control plane: a play workflow as it is submitted,
# with the labels stagectl keeps.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${KUBECONFIG:?run through make demo, which starts the control plane and sets KUBECONFIG}"
kubectl=${KUBECTL:-kubectl}
namespace=${DEMO_NAMESPACE:-stagectl-demo}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "namespace $namespace"
"$kubectl" create namespace "$namespace" --dry-run=client -o yaml | "$kubectl" apply -f -

step "submit a play workflow (examples/play-workflow.yaml)"
name=$("$kubectl" -n "$namespace" create -f examples/play-workflow.yaml -o name)
echo "$name"

step "its stage labels"
"$kubectl" -n "$namespace" get workflows -l workflow-type=play-orchestration \
  -L task-id,repository,current-stage,updated-at

step "the control plane is still running"
echo "export KUBECONFIG=$KUBECONFIG"
echo "stop it with: make controlplane-stop"
