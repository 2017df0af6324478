package sensors

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/argoproj/argo-events/pkg/apis/events/v1alpha1"
	githubsource "github.com/argoproj/argo-events/pkg/eventsources/sources/github"
	sensorreconciler "github.com/argoproj/argo-events/pkg/reconciler/sensor"

	"stagectl.dev/tests/events/webhook"
)

// The gated example pipeline (examples/pipelines/gated): its rendered EventSource and Sensors,
// a CI gate released by a passed check suite and failed by a failed one, and a merge gate,
// through Argo Events' own validation, filters and parameters, on real GitHub payloads.
const gated = "../../examples/pipelines/gated"

// gatedSensors reads every Sensor of the directory, by file name.
func gatedSensors(t *testing.T) map[string]*v1alpha1.Sensor {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(gated, "sensor-*.yaml"))
	if err != nil || len(files) != 7 {
		t.Fatalf("the gated pipeline's Sensors: %v %v", files, err)
	}
	sensors := map[string]*v1alpha1.Sensor{}
	for _, file := range files {
		sensor := &v1alpha1.Sensor{}
		if err := webhook.LoadYAML(file, sensor); err != nil {
			t.Fatal(err)
		}
		if err := sensorreconciler.ValidateSensor(sensor, &v1alpha1.EventBus{}); err != nil {
			t.Errorf("%s: %v", file, err)
		}
		sensors[strings.TrimSuffix(filepath.Base(file), ".yaml")] = sensor
	}
	return sensors
}

func TestTheGatedEventSourceListensToWhatItsWaitsName(t *testing.T) {
	source := &v1alpha1.EventSource{}
	if err := webhook.LoadYAML(filepath.Join(gated, "github-eventsource.yaml"), source); err != nil {
		t.Fatal(err)
	}
	for name, github := range source.Spec.Github {
		listener := &githubsource.EventListener{EventSourceName: source.Name, EventName: name, GithubEventSource: github}
		if err := listener.ValidateEventSource(context.Background()); err != nil {
			t.Errorf("github source %s: %v", name, err)
		}
		if got := strings.Join(github.Events, ","); got != "check_suite,pull_request,pull_request_review" {
			t.Errorf("github source %s listens to %s", name, got)
		}
	}
}

// Each delivery starts the stage-resume of exactly one Sensor, or of none, with the facts
// `stagectl resume` checks against the definition.
func TestTheGatedSensorsFireExactlyForTheirEvents(t *testing.T) {
	sensors := gatedSensors(t)
	suite := func(conclusion string) webhook.Change {
		return all(webhook.SetHeadBranch("check_suite", "task-42-x"), webhook.SetConclusion("check_suite", conclusion))
	}
	cases := []struct {
		name, payload, githubEvent string
		change                     webhook.Change
		sensor                     string // "" for none
		facts                      map[string]string
	}{
		{"opened", "pull_request/opened", "pull_request", webhook.SetLabels("task-42"), "sensor-waiting-pr-created", map[string]string{"action": "opened"}},
		{"CI passed", "check_suite/completed", "check_suite", suite("success"), "sensor-waiting-ci", map[string]string{"action": "completed", "conclusion": "success"}},
		{"pushed to", "pull_request/synchronize", "pull_request", webhook.SetLabels("task-42"), "sensor-waiting-pr-created", map[string]string{"action": "synchronize"}},
		{"CI failed", "check_suite/completed", "check_suite", suite("failure"), "sensor-waiting-ci-sent-back", map[string]string{"action": "completed", "conclusion": "failure"}},
		{"CI cancelled", "check_suite/completed", "check_suite", suite("cancelled"), "", nil},
		{"CI passed on no task's branch", "check_suite/completed", "check_suite", webhook.SetHeadBranch("check_suite", "main"), "", nil},
		{"a workflow run passed", "workflow_run/completed", "workflow_run", webhook.SetHeadBranch("workflow_run", "task-42-x"), "", nil},
		{"ready-for-qa added", "pull_request/labeled", "pull_request", all(webhook.SetLabels("task-42", "ready-for-qa"), webhook.SetLabelEvent("ready-for-qa")), "sensor-waiting-ready-for-qa", map[string]string{"action": "labeled", "label": "ready-for-qa"}},
		{"approved", "pull_request_review/submitted", "pull_request_review", all(webhook.SetLabels("task-42"), webhook.SetReviewState("approved")), "sensor-waiting-pr-approved", map[string]string{"action": "submitted", "review-state": "approved"}},
		{"changes requested", "pull_request_review/submitted", "pull_request_review", all(webhook.SetLabels("task-42"), webhook.SetReviewState("changes_requested")), "sensor-waiting-pr-approved-sent-back", map[string]string{"action": "submitted", "review-state": "changes_requested"}},
		{"merged", "pull_request/closed", "pull_request", all(webhook.SetLabels("task-42"), webhook.SetMerged(true)), "sensor-waiting-merged", map[string]string{"action": "closed", "merged": "true"}},
		{"closed unmerged", "pull_request/closed", "pull_request", all(webhook.SetLabels("task-42"), webhook.SetMerged(false)), "", nil},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			delivery := fmt.Sprintf("gated-%d", i)
			event := deliver(t, c.githubEvent, delivery, payload(t, c.payload, changes(c.change)...))
			var fired []string
			for name, sensor := range sensors {
				created := fire(t, sensor, event)
				if len(created) == 0 {
					continue
				}
				fired = append(fired, name)
				if name != c.sensor || len(created) != 1 {
					continue
				}
				got := parameters(created[0])
				want := map[string]string{"task-id": "42", "delivery-id": delivery, "event": c.githubEvent}
				for key, value := range c.facts {
					want[key] = value
				}
				for key, value := range want {
					if got[key] != value {
						t.Errorf("%s passes %s=%q, want %q (all: %v)", name, key, got[key], value, got)
					}
				}
			}
			sort.Strings(fired)
			if strings.Join(fired, ",") != c.sensor {
				t.Errorf("fired %v, want %q", fired, c.sensor)
			}
		})
	}
}

// parameters is the stage-resume Workflow's arguments, by name.
func parameters(workflow map[string]any) map[string]string {
	got := map[string]string{}
	spec, _ := workflow["spec"].(map[string]any)
	arguments, _ := spec["arguments"].(map[string]any)
	list, _ := arguments["parameters"].([]any)
	for _, item := range list {
		parameter, _ := item.(map[string]any)
		name, _ := parameter["name"].(string)
		value, _ := parameter["value"].(string)
		got[name] = value
	}
	return got
}
