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
# one).
create_plays() {
  local namespace=$1 count=$2 from manifest
  manifest=$("$KUBECTL" create -f examples/play-workflow.yaml --dry-run=client -o json)
  for ((from = 0; from < count; from += 1000)); do
    jq -c --argjson from "$from" --argjson n "$((count - from < 1000 ? count - from : 1000))" \
      '{apiVersion: "v1", kind: "List", items: [range($from; $from + $n) as $k
        | .metadata.name = "play-\($k)" | del(.metadata.generateName, .metadata.namespace)]}' <<<"$manifest" \
      | "$KUBECTL" -n "$namespace" create -f - -o name >/dev/null
  done
}

# The stage-machine policy of workflow-templates/ bound to NAMESPACE (as `kubectl apply -k`
# binds it to the namespace it installs into), with the accounts of rbac.yaml; returns once the
# API server enforces it: a play created at its last stage is refused.
bind_stage_machine_policy() {
  local namespace=$1 probe
  "$KUBECTL" -n "$namespace" apply -f workflow-templates/rbac.yaml >/dev/null
  sed -e "s/stagectl-stage-machine\.argo/stagectl-stage-machine.$namespace/" \
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
