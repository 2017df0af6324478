// Package sensors runs stagectl's Argo Events manifests through Argo Events' own code: the
// EventSource and Sensor validation, the dependency filters and the trigger parameter
// resolution a sensor uses. Events are real GitHub webhook payloads (testdata/github), varied
// per case and wrapped as the GitHub EventSource delivers them.
package sensors

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/argoproj/argo-events/pkg/apis/events/v1alpha1"
	githubsource "github.com/argoproj/argo-events/pkg/eventsources/sources/github"
	sensorreconciler "github.com/argoproj/argo-events/pkg/reconciler/sensor"

	"stagectl.dev/tests/events/taskid"
	"stagectl.dev/tests/events/webhook"
)

const (
	manifests = "../../workflow-templates"
	payloads  = "testdata/github"
)

// changes is the case's change, if it has one.
func changes(change webhook.Change) []webhook.Change {
	if change == nil {
		return nil
	}
	return []webhook.Change{change}
}

func loadSensors(t *testing.T) map[string]*v1alpha1.Sensor {
	t.Helper()
	sensors, err := webhook.LoadSensors(manifests)
	if err != nil {
		t.Fatal(err)
	}
	return sensors
}

func payload(t *testing.T, name string, changes ...webhook.Change) map[string]any {
	t.Helper()
	body, err := webhook.Payload(payloads, name, changes...)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func deliver(t *testing.T, githubEvent, delivery string, body map[string]any) *v1alpha1.Event {
	t.Helper()
	event, err := webhook.Deliver(githubEvent, delivery, body)
	if err != nil {
		t.Fatal(err)
	}
	return event
}

func fire(t *testing.T, sensor *v1alpha1.Sensor, event *v1alpha1.Event) []map[string]any {
	t.Helper()
	created, filterErrors, err := webhook.Fire(sensor, event)
	for _, filterError := range filterErrors {
		// The sensor logs such an error and does not trigger.
		t.Log(filterError)
	}
	if err != nil {
		t.Fatal(err)
	}
	return created
}

func TestManifestsPassArgoEventsValidation(t *testing.T) {
	for stage, sensor := range loadSensors(t) {
		if err := sensorreconciler.ValidateSensor(sensor, &v1alpha1.EventBus{}); err != nil {
			t.Errorf("sensor of %s: %v", stage, err)
		}
	}
	source := &v1alpha1.EventSource{}
	if err := webhook.LoadYAML(filepath.Join(manifests, "github-eventsource.yaml"), source); err != nil {
		t.Fatal(err)
	}
	if len(source.Spec.Github) == 0 || source.Spec.Service == nil {
		t.Fatal("the EventSource needs its GitHub source and the Service that exposes it")
	}
	for name, github := range source.Spec.Github {
		listener := &githubsource.EventListener{EventSourceName: source.Name, EventName: name, GithubEventSource: github}
		if err := listener.ValidateEventSource(context.Background()); err != nil {
			t.Errorf("github source %s: %v", name, err)
		}
		if github.WebhookSecret == nil || github.WebhookSecret.Name == "" {
			t.Errorf("github source %s accepts unsigned webhooks: webhookSecret is required", name)
		}
		got := strings.Join(github.Events, ",")
		if got != "pull_request,pull_request_review" {
			t.Errorf("github source %s listens to %s", name, got)
		}
	}
}

// The rule is written once, in task-id.jq; each Sensor's copy must be exactly it.
func TestEverySensorCarriesTheOneTaskIDRule(t *testing.T) {
	rule, err := taskid.Rule(manifests)
	if err != nil {
		t.Fatal(err)
	}
	files, err := taskid.SensorFiles(manifests)
	if err != nil || len(files) != len(webhook.SensorFiles) {
		t.Fatalf("sensor files %v: %v", files, err)
	}
	for _, file := range files {
		sensor, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rendered, err := taskid.Render(string(sensor), rule)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if rendered != string(sensor) {
			t.Errorf("%s does not carry workflow-templates/task-id.jq as it is: run make render", file)
		}
	}
	for stage, sensor := range loadSensors(t) {
		dependency := sensor.Spec.Dependencies[0]
		if dependency.Transform == nil || strings.TrimRight(dependency.Transform.JQ, "\n") != rule {
			t.Errorf("the sensor of %s does not transform with the rule", stage)
		}
	}
}

func all(changes ...webhook.Change) webhook.Change {
	return func(body map[string]any) {
		for _, change := range changes {
			change(body)
		}
	}
}

type sensorCase struct {
	name        string
	payload     string // under testdata/github, without .payload.json
	githubEvent string
	change      webhook.Change
	stage       string // the sensor that must fire; "" for none
	taskID      string
}

func TestSensorsFireExactlyForTheirEvents(t *testing.T) {
	sensors := loadSensors(t)
	cases := []sensorCase{
		// Rex opens the pull request.
		{"opened with a task label", "pull_request/opened", "pull_request", webhook.SetLabels("bug", "task-42"), "waiting-pr-created", "42"},
		{"opened on a task branch", "pull_request/opened", "pull_request", webhook.SetBranch("task-7-add-login"), "waiting-pr-created", "7"},
		{"opened on a feature task branch", "pull_request/opened", "pull_request", webhook.SetBranch("feature/task-8-search"), "waiting-pr-created", "8"},
		{"the label wins over the branch", "pull_request/opened", "pull_request", all(webhook.SetLabels("task-42"), webhook.SetBranch("task-7-x")), "waiting-pr-created", "42"},
		{"opened without a task", "pull_request/opened", "pull_request", nil, "", ""},
		{"closed", "pull_request/closed", "pull_request", webhook.SetLabels("task-42"), "", ""},
		// A later pass: Rex pushes to the pull request he opened.
		{"synchronize", "pull_request/synchronize", "pull_request", webhook.SetLabels("task-42"), "waiting-pr-created", "42"},
		{"reopened", "pull_request/reopened", "pull_request", webhook.SetLabels("task-42"), "waiting-pr-created", "42"},
		{"a label that is not quite a task", "pull_request/opened", "pull_request", webhook.SetLabels("xtask-5", "task-", "task-5-6"), "", ""},
		{"a branch that is not quite a task", "pull_request/opened", "pull_request", webhook.SetBranch("hotfix/task-5-x"), "", ""},
		{"opened on a branch named exactly after the task", "pull_request/opened", "pull_request", webhook.SetBranch("task-5"), "waiting-pr-created", "5"},
		{"opened on a feature branch named exactly after the task", "pull_request/opened", "pull_request", webhook.SetBranch("feature/task-5"), "waiting-pr-created", "5"},
		{"a task branch with a dangling dash", "pull_request/opened", "pull_request", webhook.SetBranch("task-5-"), "", ""},
		{"two task labels name no task", "pull_request/opened", "pull_request", all(webhook.SetLabels("task-5", "task-6"), webhook.SetBranch("task-5-x")), "", ""},
		{"one task label twice", "pull_request/opened", "pull_request", webhook.SetLabels("task-5", "bug", "task-5"), "waiting-pr-created", "5"},
		{"selector injection in a label", "pull_request/opened", "pull_request", webhook.SetLabels("task-5,current-stage=completed"), "", ""},
		{"shell injection in a branch", "pull_request/opened", "pull_request", webhook.SetBranch("task-5$(reboot)-x"), "", ""},
		{"newline injection in a label", "pull_request/opened", "pull_request", webhook.SetLabels("task-5\ncurrent-stage=x"), "", ""},
		{"template injection in a branch", "pull_request/opened", "pull_request", webhook.SetBranch("task-{{.Input}}-x"), "", ""},
		// Cleo adds ready-for-qa.
		{"ready-for-qa added", "pull_request/labeled", "pull_request", all(webhook.SetLabels("task-42", "ready-for-qa"), webhook.SetLabelEvent("ready-for-qa")), "waiting-ready-for-qa", "42"},
		{"ready-for-qa added on a task branch", "pull_request/labeled", "pull_request", all(webhook.SetBranch("feature/task-9-x"), webhook.SetLabelEvent("ready-for-qa")), "waiting-ready-for-qa", "9"},
		{"another label added", "pull_request/labeled", "pull_request", all(webhook.SetLabels("task-42", "bug"), webhook.SetLabelEvent("bug")), "", ""},
		{"the task label itself added", "pull_request/labeled", "pull_request", all(webhook.SetLabels("task-42"), webhook.SetLabelEvent("task-42")), "", ""},
		{"a label that starts like ready-for-qa", "pull_request/labeled", "pull_request", all(webhook.SetLabels("task-42"), webhook.SetLabelEvent("ready-for-qa-later")), "", ""},
		{"ready-for-qa removed", "pull_request/unlabeled", "pull_request", all(webhook.SetLabels("task-42"), webhook.SetLabelEvent("ready-for-qa")), "", ""},
		{"ready-for-qa added without a task", "pull_request/labeled", "pull_request", webhook.SetLabelEvent("ready-for-qa"), "", ""},
		{"ready-for-qa added to a pull request of two tasks", "pull_request/labeled", "pull_request", all(webhook.SetLabels("task-42", "task-43", "ready-for-qa"), webhook.SetLabelEvent("ready-for-qa")), "", ""},
		// Tess approves.
		{"approved", "pull_request_review/submitted", "pull_request_review", all(webhook.SetLabels("task-42"), webhook.SetReviewState("approved")), "waiting-pr-approved", "42"},
		{"approved on a task branch", "pull_request_review/submitted", "pull_request_review", all(webhook.SetBranch("task-11-x"), webhook.SetReviewState("approved")), "waiting-pr-approved", "11"},
		{"commented", "pull_request_review/submitted", "pull_request_review", all(webhook.SetLabels("task-42"), webhook.SetReviewState("commented")), "", ""},
		// Tess requests changes: the play goes round again.
		{"changes requested", "pull_request_review/submitted", "pull_request_review", all(webhook.SetLabels("task-42"), webhook.SetReviewState("changes_requested")), "waiting-pr-approved-sent-back", "42"},
		{"changes requested, as the REST API writes it", "pull_request_review/submitted", "pull_request_review", all(webhook.SetLabels("task-42"), webhook.SetReviewState("CHANGES_REQUESTED")), "waiting-pr-approved-sent-back", "42"},
		{"a review dismissed", "pull_request_review/dismissed", "pull_request_review", webhook.SetLabels("task-42"), "", ""},
		{"approved without a task", "pull_request_review/submitted", "pull_request_review", webhook.SetReviewState("approved"), "", ""},
		{"approved on a pull request of two tasks", "pull_request_review/submitted", "pull_request_review", all(webhook.SetLabels("task-42", "task-7"), webhook.SetReviewState("approved")), "", ""},
		{"a review payload sent as pull_request", "pull_request_review/submitted", "pull_request", all(webhook.SetLabels("task-42"), webhook.SetReviewState("approved")), "", ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			delivery := fmt.Sprintf("72d3162e-cc78-11e3-81ab-4c9367dc%04d", i)
			body := payload(t, c.payload, changes(c.change)...)
			event := deliver(t, c.githubEvent, delivery, body)
			for stage, sensor := range sensors {
				created := fire(t, sensor, event)
				if stage != c.stage {
					if len(created) != 0 {
						t.Errorf("the sensor of %s fired: %v", stage, created)
					}
					continue
				}
				want := expectedWorkflow(stage, c.taskID, "Codertocat/Hello-World", delivery, c.githubEvent, body)
				if len(created) != 1 || !reflect.DeepEqual(created[0], want) {
					got, _ := json.MarshalIndent(created, "", "  ")
					wanted, _ := json.MarshalIndent(want, "", "  ")
					t.Errorf("the sensor of %s created\n%s\nwant\n%s", stage, got, wanted)
				}
			}
		})
	}
}

// factsOf is what each Sensor passes of its event for `stagectl resume` to check, after the
// five parameters every Sensor passes: the payload's own values, by path (`when` is when the
// event happened on GitHub: an event of an earlier pass releases nothing of a later one).
var factsOf = map[string][][2]string{
	"waiting-pr-created":            {{"action", "action"}, {"occurred-at", "pull_request.updated_at"}},
	"waiting-ready-for-qa":          {{"action", "action"}, {"occurred-at", "pull_request.updated_at"}, {"label", "label.name"}},
	"waiting-pr-approved":           {{"action", "action"}, {"occurred-at", "review.submitted_at"}, {"review-state", "review.state"}},
	"waiting-pr-approved-sent-back": {{"action", "action"}, {"occurred-at", "review.submitted_at"}, {"review-state", "review.state"}},
}

// at is the string at a dotted path of a payload.
func at(body map[string]any, path string) string {
	var value any = body
	for _, key := range strings.Split(path, ".") {
		object, _ := value.(map[string]any)
		value = object[key]
	}
	text, _ := value.(string)
	return text
}

// expectedWorkflow is the stage-resume Workflow a matching event must yield, field by field.
func expectedWorkflow(sensor, taskID, repository, delivery, githubEvent string, body map[string]any) map[string]any {
	parameter := func(name, value string) map[string]any { return map[string]any{"name": name, "value": value} }
	stage := webhook.StageOf(sensor)
	var facts []any
	for _, fact := range factsOf[sensor] {
		value := at(body, fact[1])
		if value == "" {
			panic(fmt.Sprintf("the test payload has no %s", fact[1]))
		}
		facts = append(facts, parameter(fact[0], value))
	}
	return map[string]any{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind":       "Workflow",
		"metadata": map[string]any{
			"name": "stage-resume-" + delivery,
			"labels": map[string]any{
				"app.kubernetes.io/part-of": "stagectl",
				"stagectl.dev/stage-resume": stage,
			},
		},
		"spec": map[string]any{
			"workflowTemplateRef": map[string]any{"name": "stage-resume"},
			"arguments": map[string]any{"parameters": append([]any{
				parameter("stage", stage),
				parameter("task-id", taskID),
				parameter("repository", repository),
				parameter("delivery-id", delivery),
				parameter("event", githubEvent),
			}, facts...)},
		},
	}
}

// The task-id rule on the shared vectors, through the Sensor's own transform: stagectl
// reconcile is checked against the same file.
func TestTheTaskIDRuleGivesTheSharedVectors(t *testing.T) {
	vectors := taskIDVectors(t)
	sensor := loadSensors(t)["waiting-pr-created"]
	for i, vector := range vectors {
		body := payload(t, "pull_request/opened", webhook.SetLabels(vector.Labels...), webhook.SetBranch(vector.Branch))
		event := deliver(t, "pull_request", fmt.Sprintf("vector-%d", i), body)
		got, err := webhook.TaskID(sensor, event)
		if err != nil {
			t.Fatal(err)
		}
		if got != vector.Task {
			t.Errorf("labels %q, branch %q: task %q, want %q", vector.Labels, vector.Branch, got, vector.Task)
		}
	}
}

// A check suite's or workflow run's task is its head branch's, by the same rule (such payloads
// carry no labels); the play's Sensors, which wait for pull request events, never fire for them.
func TestChecksOnAHeadBranchNameItsTaskAndStartNoWaitOfThePlay(t *testing.T) {
	vectors := taskIDVectors(t)
	sensors := loadSensors(t)
	checked := 0
	for i, vector := range vectors {
		if len(vector.Labels) > 0 {
			continue
		}
		for _, kind := range []string{"check_suite", "workflow_run"} {
			body := payload(t, kind+"/completed", webhook.SetHeadBranch(kind, vector.Branch))
			event := deliver(t, kind, fmt.Sprintf("%s-vector-%d", kind, i), body)
			got, err := webhook.TaskID(sensors["waiting-pr-created"], event)
			if err != nil {
				t.Fatal(err)
			}
			if got != vector.Task {
				t.Errorf("%s on branch %q: task %q, want %q", kind, vector.Branch, got, vector.Task)
			}
			for stage, sensor := range sensors {
				if created := fire(t, sensor, event); len(created) != 0 {
					t.Errorf("the sensor of %s fired for a %s: %v", stage, kind, created)
				}
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d cases", checked)
	}
}

// taskIDVector is a case of tests/vectors/task-id.json, which stagectl's own rule is checked
// against too.
type taskIDVector struct {
	Labels []string `json:"labels"`
	Branch string   `json:"branch"`
	Task   string   `json:"task"`
}

func taskIDVectors(t *testing.T) []taskIDVector {
	t.Helper()
	var file struct {
		Vectors []taskIDVector `json:"vectors"`
	}
	data, err := os.ReadFile("../vectors/task-id.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	return file.Vectors
}
