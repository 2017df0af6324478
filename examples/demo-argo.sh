#!/usr/bin/env bash
# The second half of `make demo`: one play from the installed WorkflowTemplate, run by Argo's
# real workflow-controller (tests/e2e starts it, with the test pod runner and scripted agents),
# while `stagectl get --watch` prints the stage table as it moves. The agents' GitHub webhooks
# are signed and POSTed to Argo Events' own GitHub EventSource, which puts them on a JetStream
# EventBus for the Sensors, whose trigger creates the stage-resume (tests/events starts them).
# Rex's pull request event comes early (latched: the wait is skipped), Cleo's ready-for-qa label
# on time (the wait is resumed), Tess's approval early and redelivered by GitHub (applied once).
# The EventSource stays up on DEMO_WEBHOOK_ADDRESS (127.0.0.1:12000) for webhooks by hand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${KUBECONFIG:?run through make demo, which starts the Argo controller and sets KUBECONFIG}"
kubectl=${KUBECTL:-kubectl}
stagectl=${STAGECTL:-stagectl}
namespace=${DEMO_NAMESPACE:-stagectl-demo-argo}
webhook_address=${DEMO_WEBHOOK_ADDRESS:-127.0.0.1:12000}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "install the templates and RBAC in namespace $namespace"
"$kubectl" create namespace "$namespace" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
"$kubectl" -n "$namespace" apply -f workflow-templates/rbac.yaml \
  -f workflow-templates/play-workflow-template.yaml -f workflow-templates/stage-resume-template.yaml

step "start Argo Events for $namespace: the GitHub EventSource, a JetStream EventBus, the Sensors"
events=$(EVENTS_WEBHOOK_ADDRESS=$webhook_address tests/events/start "$namespace")
webhook_url=$(sed -n 's/^WEBHOOK_URL=//p' <<<"$events")
secret_file=$(sed -n 's/^WEBHOOK_SECRET_FILE=//p' <<<"$events")
echo "the EventSource listens on $webhook_url"

step "submit a play of task 42 and watch its stage (stagectl get --watch)"
play() {
  cat <<'EOF'
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: play-42-
spec:
  workflowTemplateRef: {name: play}
  arguments:
    parameters:
      - {name: task-id, value: "42"}
      - {name: repository, value: acme/widgets}
      - {name: rex-command, value: 'rex --task "$TASK_ID" --repository "$REPOSITORY" --event early'}
      - {name: cleo-command, value: 'cleo --task "$TASK_ID" --repository "$REPOSITORY" --event on-time'}
      - {name: tess-command, value: 'tess --task "$TASK_ID" --repository "$REPOSITORY" --event early --deliveries 2'}
EOF
}
workflow=$(play | "$kubectl" -n "$namespace" create -o name -f -)
workflow=${workflow#*/}
"$stagectl" -n "$namespace" get "$workflow" --watch &
watcher=$!
trap 'kill $watcher 2>/dev/null || true' EXIT
"$kubectl" -n "$namespace" wait "workflow/$workflow" --timeout=300s \
  --for=jsonpath='{.metadata.labels.workflows\.argoproj\.io/completed}'=true >/dev/null
sleep 1
kill "$watcher"

step "the play's nodes: each wait skipped (early event) or resumed (on-time event)"
printf '%-28s %-9s %-10s %s\n' NODE TYPE PHASE MESSAGE
"$kubectl" -n "$namespace" get workflow "$workflow" -o jsonpath='{range .status.nodes.*}{.displayName}{"\t"}{.type}{"\t"}{.phase}{"\t"}{.message}{"\n"}{end}' |
  while IFS=$'\t' read -r node type phase message; do
    [[ $type == Retry ]] || printf '%-28s %-9s %-10s %s\n' "$node" "$type" "$phase" "$message"
  done

step "the webhooks the EventSource accepted, and what the Sensors' triggers did with them"
state=$(dirname "$secret_file")/../..
echo "EventSource: $(grep -c 'successfully dispatched the request to the event bus' "$state/eventsource.log") webhooks put on the bus"
for log in "$state"/sensor-*.log; do
  echo "$(basename "$log" .log): $(grep -c 'Successfully processed trigger' "$log") triggers run," \
    "$(grep -c 'Failed to execute a trigger' "$log") trigger failures logged (a redelivery: its create refused as AlreadyExists)"
done

step "the stage-resume workflows the sensors' triggers created (the redelivery was refused by name)"
"$kubectl" -n "$namespace" get workflows -l stagectl.dev/stage-resume

step "the play's record"
"$stagectl" -n "$namespace" get "$workflow" -o yaml

step "Argo Events, Argo's controller, the pod runner and the control plane are still running"
echo "export KUBECONFIG=$KUBECONFIG"
echo "The EventSource takes GitHub webhooks at $webhook_url, signed with this secret:"
echo "  $(cat "$secret_file")   (in $secret_file; Secret github-webhook-secret in $namespace)"
echo "Send one by hand (a pull request of task 43 opened; README.md shows the same with curl):"
echo "  tests/e2e/bin/github-event -event pr-opened -task 43 -repository acme/widgets -delivery \$(cat /proc/sys/kernel/random/uuid) \\"
echo "    -payloads tests/events/testdata/github -url $webhook_url -secret-file $secret_file"
echo "stop them with: make demo-stop"
