// github-event is what the end-to-end test's scripted agents do in place of GitHub and Argo
// Events: it makes the webhook an agent's real counterpart causes (from the real octokit payloads),
// hands it to every sensor of workflow-templates/ through Argo Events' own filter and parameter
// code, and prints what the sensors' k8s triggers would create, one JSON object per line (nothing
// when no sensor fires). Test infrastructure, not part of stagectl.
//
//	github-event -event pr-opened|ready-for-qa|approved -task 42 -repository acme/widgets -delivery ID \
//	  -sensors workflow-templates -payloads tests/sensors/testdata/github
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"stagectl.dev/tests/sensors/webhook"
)

// What each agent's real counterpart does on GitHub: the payload it causes, its event name, and
// how the payload is made to name the task.
var kinds = map[string]struct {
	payload, githubEvent string
	changes              func(task string) []webhook.Change
}{
	"pr-opened": {"pull_request/opened", "pull_request", func(task string) []webhook.Change {
		return []webhook.Change{webhook.SetLabels("task-" + task), webhook.SetBranch("task-" + task + "-implementation")}
	}},
	"ready-for-qa": {"pull_request/labeled", "pull_request", func(task string) []webhook.Change {
		return []webhook.Change{webhook.SetLabels("task-"+task, "ready-for-qa"), webhook.SetLabelEvent("ready-for-qa")}
	}},
	"approved": {"pull_request_review/submitted", "pull_request_review", func(task string) []webhook.Change {
		return []webhook.Change{webhook.SetLabels("task-" + task), webhook.SetReviewState("approved")}
	}},
}

func main() {
	kind := flag.String("event", "", "pr-opened, ready-for-qa or approved")
	task := flag.String("task", "", "the task id the pull request names")
	repository := flag.String("repository", "", "OWNER/REPO the webhook comes from")
	delivery := flag.String("delivery", "", "the X-GitHub-Delivery id")
	sensors := flag.String("sensors", "", "the directory of the sensors (workflow-templates)")
	payloads := flag.String("payloads", "", "the directory of the GitHub payloads (tests/sensors/testdata/github)")
	flag.Parse()
	what, known := kinds[*kind]
	if !known || *task == "" || *repository == "" || *delivery == "" || *sensors == "" || *payloads == "" {
		fmt.Fprintln(os.Stderr, "error: give -event pr-opened|ready-for-qa|approved, -task, -repository, -delivery, -sensors and -payloads")
		os.Exit(2)
	}
	if err := run(what.payload, what.githubEvent, append(what.changes(*task), webhook.SetRepository(*repository)), *delivery, *sensors, *payloads); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(payload, githubEvent string, changes []webhook.Change, delivery, sensorDir, payloadDir string) error {
	sensors, err := webhook.LoadSensors(sensorDir)
	if err != nil {
		return err
	}
	body, err := webhook.Payload(payloadDir, payload, changes...)
	if err != nil {
		return err
	}
	event, err := webhook.Deliver(githubEvent, delivery, body)
	if err != nil {
		return err
	}
	created, err := webhook.FireAll(sensors, event)
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	for _, object := range created {
		if err := out.Encode(object); err != nil {
			return err
		}
	}
	return nil
}
