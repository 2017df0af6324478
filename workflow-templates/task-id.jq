# The task a GitHub event is for — a pull request's, its review's, or a check suite's or workflow
# run's on its head branch — added to the event as `taskId` ("" when the pull request names no
# task, or names more than one). The one definition of the rule: every Sensor
# carries a copy as its dependency's transform (`stagectl pipeline render` writes them; `make test` checks them).
#   - a label `task-<id>` names the task; two different task labels name none (never guessed);
#   - else the head branch: `task-<id>`, `task-<id>-<anything>`, or the same under `feature/`;
#   - <id> is ASCII letters and digits; every pattern is anchored.
(.body.pull_request
  // {head: {ref: (.body.check_suite.head_branch // .body.workflow_run.head_branch)}}) as $pr
| ([$pr.labels[]?.name | strings | select(test("^task-[0-9A-Za-z]+$")) | ltrimstr("task-")] | unique) as $labelled
| .taskId = (
    if ($labelled | length) > 0 then
      if ($labelled | length) == 1 then $labelled[0] else "" end
    else
      first($pr.head.ref | strings | capture("^(?:feature/)?task-(?<id>[0-9A-Za-z]+)(?:-.+)?$") | .id) // ""
    end
  )
