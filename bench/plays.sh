# Play workflows for the bench scripts, from examples/play-workflow.yaml; sourced, with KUBECTL
# set and the repository as the working directory.

# One play in NAMESPACE. Sets play_workflow to its name and play_reset to a command that puts it
# back as submitted (stage pending, the submission's annotations, so no history), so that no
# timed run pays for the ones before it.
create_play() {
  local namespace=$1 created annotations patch
  created=$("$KUBECTL" -n "$namespace" create -f examples/play-workflow.yaml -o name)
  play_workflow=${created#*/}
  annotations=$("$KUBECTL" -n "$namespace" get workflow "$play_workflow" -o json | jq -c .metadata.annotations)
  patch="[{\"op\":\"replace\",\"path\":\"/metadata/labels/current-stage\",\"value\":\"pending\"},{\"op\":\"replace\",\"path\":\"/metadata/annotations\",\"value\":$annotations}]"
  play_reset="$KUBECTL -n $namespace patch workflow $play_workflow --type json -p '$patch'"
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
