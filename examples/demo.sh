#!/usr/bin/env bash
# The demo `make demo` runs against the local control plane: a play workflow walked through
# every stage with stagectl, as an operator would see it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${KUBECONFIG:?run through make demo, which starts the control plane and sets KUBECONFIG}"
kubectl=${KUBECTL:-kubectl}
stagectl=${STAGECTL:-stagectl}
namespace=${DEMO_NAMESPACE:-stagectl-demo}
export STAGECTL_NAMESPACE=$namespace

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() {
  printf '\033[2m$ %s\033[0m\n' "stagectl $*"
  local code=0
  "$stagectl" "$@" || code=$?
  [[ $code == 0 ]] || printf '\033[2m(exit %s)\033[0m\n' "$code"
}

step "namespace $namespace"
"$kubectl" create namespace "$namespace" --dry-run=client -o yaml | "$kubectl" apply -f -

step "submit a play workflow (examples/play-workflow.yaml)"
workflow=$("$kubectl" -n "$namespace" create -f examples/play-workflow.yaml -o name)
workflow=${workflow#*/}
echo "$workflow"
show get

step "Rex is done: the play waits for the pull request"
show set waiting-pr-created --workflow "$workflow" --task-id 42 --reason "Rex finished"
show set waiting-pr-created --workflow "$workflow" --task-id 42
show verify waiting-pr-created --workflow "$workflow" --task-id 42

step "a skip is refused and writes nothing"
show set completed --workflow "$workflow"
show set waiting-pr-created --workflow "$workflow" --task-id 7

step "Cleo and Tess are done"
show set waiting-ready-for-qa --workflow "$workflow" --reason "Cleo finished"
show set waiting-pr-approved --workflow "$workflow" --reason "Tess finished"

step "QA asks for another round: back one stage, then forward again"
show rollback --workflow "$workflow" --reason "QA found a regression"
show set waiting-pr-approved --workflow "$workflow" --reason "Tess finished again"
show set completed --workflow "$workflow" --reason "approved"

step "the stage table and the play's full record"
show get -o wide
show get "$workflow" -o yaml

step "the Events stagectl recorded"
"$kubectl" -n "$namespace" get events --field-selector "involvedObject.name=$workflow" \
  -o custom-columns=REASON:.reason,MESSAGE:.message

step "the control plane is still running"
echo "export KUBECONFIG=$KUBECONFIG"
echo "stop it with: make controlplane-stop"
