# Play workflows for the bench scripts, from examples/play-workflow.yaml; sourced, with KUBECTL
# set and the repository as the working directory.

# One play in NAMESPACE. Sets play_workflow to its name and play_reset to a command that puts it
# back as submitted (stage pending, the submission's annotations, so no history), so that no
# timed run pays for the ones before it.
# Under the stage-machine policy only stagectl's accounts or the break-glass group may put the
# stage back: pass BREAK_GLASS=1 to reset as a member of the group.
create_play() {
  local namespace=$1 created annotations patch as=""
  [[ ${BREAK_GLASS:-0} == 1 ]] && as="--as=bench-operator --as-group=stagectl:break-glass --as-group=system:masters"
  created=$("$KUBECTL" -n "$namespace" create -f examples/play-workflow.yaml -o name)
  play_workflow=${created#*/}
  annotations=$("$KUBECTL" -n "$namespace" get workflow "$play_workflow" -o json | jq -c .metadata.annotations)
  patch="[{\"op\":\"replace\",\"path\":\"/metadata/labels/current-stage\",\"value\":\"pending\"},{\"op\":\"replace\",\"path\":\"/metadata/annotations\",\"value\":$annotations}]"
  play_reset="$KUBECTL $as -n $namespace patch workflow $play_workflow --type json -p '$patch'"
}

# COUNT plays named play-0 … in NAMESPACE, created in lists of 1,000 (kubectl sends them one by
# one). With TASKS=each, play-K is the play of task other-K (by default all are the example's
# task 42).
create_plays() {
  local namespace=$1 count=$2 from manifest
  manifest=$("$KUBECTL" create -f examples/play-workflow.yaml --dry-run=client -o json)
  for ((from = 0; from < count; from += 1000)); do
    jq -c --argjson from "$from" --argjson n "$((count - from < 1000 ? count - from : 1000))" \
      --arg tasks "${TASKS:-}" \
      '{apiVersion: "v1", kind: "List", items: [range($from; $from + $n) as $k
        | .metadata.name = "play-\($k)" | del(.metadata.generateName, .metadata.namespace)
        | if $tasks == "each" then .metadata.labels["task-id"] = "other-\($k)" else . end]}' <<<"$manifest" \
      | "$KUBECTL" -n "$namespace" create -f - -o name >/dev/null
  done
}

# One play of task 42 in NAMESPACE at waiting-pr-created with its Suspend node Running, as the
# controller leaves it when the DAG reaches the wait. Sets waiting_workflow, waiting_node (its
# node id) and waiting_reset, a command that puts it back so that a resume can run again.
create_waiting_play() {
  local namespace=$1 created waiting patch
  created=$("$KUBECTL" -n "$namespace" create -f examples/play-workflow.yaml -o name)
  waiting_workflow=${created#*/}
  waiting_node=$waiting_workflow-wait
  "$KUBECTL" -n "$namespace" patch workflow "$waiting_workflow" --type merge -p "$(jq -cn --arg w "$waiting_workflow" --arg id "$waiting_node" '
    {metadata: {labels: {"current-stage": "waiting-pr-created"}},
     status: {phase: "Running", nodes: {($id): {id: $id, name: "\($w).wait-pr-created", displayName: "wait-pr-created",
       type: "Suspend", phase: "Running", boundaryID: $w, templateName: "wait-for-event", startedAt: "2026-11-24T10:00:00Z",
       inputs: {parameters: [{name: "stage", value: "waiting-pr-created"}]}}}}}')" >/dev/null
  waiting=$("$KUBECTL" -n "$namespace" get workflow "$waiting_workflow" -o json | jq -c '{annotations: .metadata.annotations, status: .status}')
  patch=$(jq -c '[{op: "replace", path: "/metadata/annotations", value: .annotations},
    {op: "replace", path: "/status", value: .status}]' <<<"$waiting")
  waiting_reset="$KUBECTL -n $namespace patch workflow $waiting_workflow --type json -p '$patch'"
}

# Requests to the Workflows of NAMESPACE that the API server's audit log AUDIT_LOG holds (one
# per request: a write's arrival, logged apart, is not counted).
workflow_requests_in() {
  local audit_log=$1 namespace=$2
  jq -c --arg ns "$namespace" 'select(.objectRef.namespace == $ns and .objectRef.resource == "workflows" and .stage != "RequestReceived")' \
    "$audit_log" | wc -l
}

# The stage-machine policy of workflow-templates/ bound to NAMESPACE (as `kubectl apply -k`
# binds it to the namespace it installs into), with the accounts of rbac.yaml; returns once the
# API server enforces it: a play created at its last stage is refused.
bind_stage_machine_policy() {
  local namespace=$1 probe
  "$KUBECTL" -n "$namespace" apply -f workflow-templates/rbac.yaml >/dev/null
  sed -e "s/stagectl-stage-machine-play\.argo/stagectl-stage-machine-play.$namespace/" \
    -e "s|kubernetes.io/metadata.name: argo|kubernetes.io/metadata.name: $namespace|" \
    workflow-templates/stage-machine-policy.yaml | "$KUBECTL" -n "$namespace" apply -f - >/dev/null
  probe=$("$KUBECTL" create -f examples/play-workflow.yaml --dry-run=client -o json \
    | jq -c '.metadata.labels["current-stage"] = "completed"')
  for _ in $(seq 300); do
    "$KUBECTL" -n "$namespace" create --dry-run=server -f - <<<"$probe" >/dev/null 2>&1 || return 0
    sleep 0.1
  done
  echo "the stage-machine policy is not in force in $namespace after 30s" >&2
  return 1
}
