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

# A task has one active play: plays of earlier demo runs go first.
"$kubectl" -n "$namespace" delete workflows -l workflow-type=play-orchestration --ignore-not-found >/dev/null

step "submit a play workflow (examples/play-workflow.yaml)"
workflow=$("$kubectl" -n "$namespace" create -f examples/play-workflow.yaml -o name)
workflow=${workflow#*/}
echo "$workflow"
show get

# No Argo controller runs on the demo control plane: where the play reaches a wait, the demo
# writes the wait's node into the Workflow's status as the controller would.
controller_reaches_wait() {
  local stage=$1 id="$workflow-wait-$1"
  "$kubectl" -n "$namespace" patch workflow "$workflow" --type merge -p "{\"status\": {\"phase\": \"Running\",
    \"nodes\": {\"$id\": {\"id\": \"$id\", \"name\": \"$workflow.wait-$stage\", \"type\": \"Suspend\",
    \"phase\": \"Running\", \"templateName\": \"wait-for-event\", \"startedAt\": \"$(date -u +%FT%TZ)\",
    \"inputs\": {\"parameters\": [{\"name\": \"stage\", \"value\": \"$stage\"}]}}}}}" >/dev/null
  echo "(the controller reaches the wait of $stage)"
}
resume() {
  show resume --stage "$1" --task-id 42 --repository acme/widgets --delivery-id "$2" --event "$3"
}

step "Rex opens the pull request while it still runs: the event comes early and is latched"
resume waiting-pr-created 72d3162e-0001 pull_request

step "Rex is done: the play enters the wait, which the early event already satisfied"
show set waiting-pr-created --workflow "$workflow" --task-id 42 --reason "Rex finished" --skip-wait-file /tmp/stagectl-demo-skip
echo "skip-wait file: $(cat /tmp/stagectl-demo-skip)"
show set waiting-pr-created --workflow "$workflow" --task-id 42
show verify waiting-pr-created --workflow "$workflow" --task-id 42

step "a skip is refused and writes nothing"
show set completed --workflow "$workflow"
show set waiting-pr-created --workflow "$workflow" --task-id 7

step "Cleo is done; ready-for-qa arrives on time and resumes the wait"
show set waiting-ready-for-qa --workflow "$workflow" --reason "Cleo finished" --skip-wait-file /tmp/stagectl-demo-skip
echo "skip-wait file: $(cat /tmp/stagectl-demo-skip)"
controller_reaches_wait waiting-ready-for-qa
resume waiting-ready-for-qa 72d3162e-0002 pull_request
"$kubectl" -n "$namespace" get workflow "$workflow" \
  -o jsonpath='{.status.nodes.*.phase}{"  "}{.status.nodes.*.message}{"\n"}'

step "GitHub redelivers the same webhook: nothing happens twice"
resume waiting-ready-for-qa 72d3162e-0002 pull_request

step "Tess is done"
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

step "the control plane is still running; next, a play under Argo's controller"
echo "export KUBECONFIG=$KUBECONFIG"
echo "stop it (and what the next part starts) with: make demo-stop"
