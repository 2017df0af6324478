// Package sensors runs stagectl's Argo Events manifests through Argo Events' own code: the
// EventSource and Sensor validation, the dependency filters and the trigger parameter
// resolution a sensor uses. Events are real GitHub webhook payloads (testdata/github), varied
// per case and wrapped as the GitHub EventSource delivers them.
package sensors

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-events/pkg/apis/events/v1alpha1"
	"github.com/argoproj/argo-events/pkg/eventsources/events"
	githubsource "github.com/argoproj/argo-events/pkg/eventsources/sources/github"
	sensorreconciler "github.com/argoproj/argo-events/pkg/reconciler/sensor"
	"github.com/argoproj/argo-events/pkg/sensors/dependencies"
	"github.com/argoproj/argo-events/pkg/sensors/triggers"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const manifests = "../../workflow-templates"

var sensorFiles = map[string]string{
	"waiting-pr-created":   "sensor-waiting-pr-created.yaml",
	"waiting-ready-for-qa": "sensor-waiting-ready-for-qa.yaml",
	"waiting-pr-approved":  "sensor-waiting-pr-approved.yaml",
}

func loadYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadSensors(t *testing.T) map[string]*v1alpha1.Sensor {
	t.Helper()
	sensors := map[string]*v1alpha1.Sensor{}
	for stage, file := range sensorFiles {
		sensor := &v1alpha1.Sensor{}
		loadYAML(t, filepath.Join(manifests, file), sensor)
		sensors[stage] = sensor
	}
	return sensors
}

// payload reads a real GitHub payload and lets a case change it.
func payload(t *testing.T, name string, change func(body map[string]any)) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata/github", name+".payload.json"))
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]any{}
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(body)
	}
	return body
}

// deliver wraps a payload as the GitHub EventSource hands it to sensors: the request headers
// (Go-canonicalised, with array values) and the body, into which it copies X-GitHub-Event and
// X-GitHub-Delivery.
func deliver(t *testing.T, githubEvent, delivery string, body map[string]any) *v1alpha1.Event {
	t.Helper()
	body["X-GitHub-Event"] = githubEvent
	body["X-GitHub-Delivery"] = delivery
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	header := http.Header{}
	header.Set("X-GitHub-Event", githubEvent)
	header.Set("X-GitHub-Delivery", delivery)
	header.Set("Content-Type", "application/json")
	header.Set("X-Hub-Signature-256", "sha256=checked-by-the-eventsource")
	message := json.RawMessage(raw)
	data, err := json.Marshal(&events.GithubEventData{Headers: header, Body: &message})
	if err != nil {
		t.Fatal(err)
	}
	return &v1alpha1.Event{
		Context: &v1alpha1.EventContext{
			ID: delivery, Source: "github", SpecVersion: "1.0", Type: "github",
			DataContentType: "application/json", Subject: "play", Time: metav1.Time{Time: time.Now()},
		},
		Data: data,
	}
}

// fire evaluates a sensor on one event as the sensor does: each dependency's filters, then, for
// a trigger whose dependency passed, its k8s resource with the parameters applied. It returns the
// resources the sensor would create.
func fire(t *testing.T, sensor *v1alpha1.Sensor, event *v1alpha1.Event) []map[string]any {
	t.Helper()
	passed := map[string]*v1alpha1.Event{}
	for _, dependency := range sensor.Spec.Dependencies {
		ok, err := dependencies.Filter(event, dependency.Filters, dependency.FiltersLogicalOperator)
		if err != nil {
			// The sensor logs such an error and does not trigger.
			t.Logf("%s/%s: filter error: %v", sensor.Name, dependency.Name, err)
		}
		if ok && err == nil {
			passed[dependency.Name] = event
		}
	}
	var created []map[string]any
	for _, trigger := range sensor.Spec.Triggers {
		if len(passed) == 0 {
			continue
		}
		trigger := trigger.DeepCopy()
		if err := triggers.ApplyTemplateParameters(passed, trigger); err != nil {
			t.Fatalf("%s: template parameters: %v", sensor.Name, err)
		}
		k8s := trigger.Template.K8s
		if k8s == nil || k8s.Operation != v1alpha1.Create {
			t.Fatalf("%s: the trigger must be a k8s create", sensor.Name)
		}
		object := &unstructured.Unstructured{}
		if err := object.UnmarshalJSON(k8s.Source.Resource.Value); err != nil {
			t.Fatalf("%s: resource: %v", sensor.Name, err)
		}
		if err := triggers.ApplyResourceParameters(passed, k8s.Parameters, object); err != nil {
			t.Fatalf("%s: resource parameters: %v", sensor.Name, err)
		}
		created = append(created, object.Object)
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
	loadYAML(t, filepath.Join(manifests, "github-eventsource.yaml"), source)
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

func TestTheSensorsShareOneTaskIDRule(t *testing.T) {
	var rule string
	for stage, sensor := range loadSensors(t) {
		filters := sensor.Spec.Dependencies[0].Filters.Data
		template := filters[len(filters)-1].Template
		if rule == "" {
			rule = template
		} else if template != rule {
			t.Errorf("the sensor of %s extracts the task id differently", stage)
		}
	}
}

func setLabels(names ...string) func(map[string]any) {
	return func(body map[string]any) {
		labels := []any{}
		for _, name := range names {
			labels = append(labels, map[string]any{"id": 1, "name": name, "color": "ededed", "default": false})
		}
		body["pull_request"].(map[string]any)["labels"] = labels
	}
}

func setBranch(ref string) func(map[string]any) {
	return func(body map[string]any) {
		body["pull_request"].(map[string]any)["head"].(map[string]any)["ref"] = ref
	}
}

func setLabelEvent(name string) func(map[string]any) {
	return func(body map[string]any) {
		body["label"] = map[string]any{"id": 2, "name": name, "color": "0e8a16", "default": false}
	}
}

func setReviewState(state string) func(map[string]any) {
	return func(body map[string]any) { body["review"].(map[string]any)["state"] = state }
}

func all(changes ...func(map[string]any)) func(map[string]any) {
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
	change      func(map[string]any)
	stage       string // the sensor that must fire; "" for none
	taskID      string
}

func TestSensorsFireExactlyForTheirEvents(t *testing.T) {
	sensors := loadSensors(t)
	cases := []sensorCase{
		// Rex opens the pull request.
		{"opened with a task label", "pull_request/opened", "pull_request", setLabels("bug", "task-42"), "waiting-pr-created", "42"},
		{"opened on a task branch", "pull_request/opened", "pull_request", setBranch("task-7-add-login"), "waiting-pr-created", "7"},
		{"opened on a feature task branch", "pull_request/opened", "pull_request", setBranch("feature/task-8-search"), "waiting-pr-created", "8"},
		{"the label wins over the branch", "pull_request/opened", "pull_request", all(setLabels("task-42"), setBranch("task-7-x")), "waiting-pr-created", "42"},
		{"opened without a task", "pull_request/opened", "pull_request", nil, "", ""},
		{"closed", "pull_request/closed", "pull_request", setLabels("task-42"), "", ""},
		{"synchronize", "pull_request/synchronize", "pull_request", setLabels("task-42"), "", ""},
		{"reopened", "pull_request/reopened", "pull_request", setLabels("task-42"), "", ""},
		{"a label that is not quite a task", "pull_request/opened", "pull_request", setLabels("xtask-5", "task-", "task-5-6"), "", ""},
		{"a branch that is not quite a task", "pull_request/opened", "pull_request", setBranch("hotfix/task-5-x"), "", ""},
		{"a task branch without a description", "pull_request/opened", "pull_request", setBranch("task-5"), "", ""},
		{"selector injection in a label", "pull_request/opened", "pull_request", setLabels("task-5,current-stage=completed"), "", ""},
		{"shell injection in a branch", "pull_request/opened", "pull_request", setBranch("task-5$(reboot)-x"), "", ""},
		{"newline injection in a label", "pull_request/opened", "pull_request", setLabels("task-5\ncurrent-stage=x"), "", ""},
		{"template injection in a branch", "pull_request/opened", "pull_request", setBranch("task-{{.Input}}-x"), "", ""},
		// Cleo adds ready-for-qa.
		{"ready-for-qa added", "pull_request/labeled", "pull_request", all(setLabels("task-42", "ready-for-qa"), setLabelEvent("ready-for-qa")), "waiting-ready-for-qa", "42"},
		{"ready-for-qa added on a task branch", "pull_request/labeled", "pull_request", all(setBranch("feature/task-9-x"), setLabelEvent("ready-for-qa")), "waiting-ready-for-qa", "9"},
		{"another label added", "pull_request/labeled", "pull_request", all(setLabels("task-42", "bug"), setLabelEvent("bug")), "", ""},
		{"the task label itself added", "pull_request/labeled", "pull_request", all(setLabels("task-42"), setLabelEvent("task-42")), "", ""},
		{"a label that starts like ready-for-qa", "pull_request/labeled", "pull_request", all(setLabels("task-42"), setLabelEvent("ready-for-qa-later")), "", ""},
		{"ready-for-qa removed", "pull_request/unlabeled", "pull_request", all(setLabels("task-42"), setLabelEvent("ready-for-qa")), "", ""},
		{"ready-for-qa added without a task", "pull_request/labeled", "pull_request", setLabelEvent("ready-for-qa"), "", ""},
		// Tess approves.
		{"approved", "pull_request_review/submitted", "pull_request_review", all(setLabels("task-42"), setReviewState("approved")), "waiting-pr-approved", "42"},
		{"approved on a task branch", "pull_request_review/submitted", "pull_request_review", all(setBranch("task-11-x"), setReviewState("approved")), "waiting-pr-approved", "11"},
		{"commented", "pull_request_review/submitted", "pull_request_review", all(setLabels("task-42"), setReviewState("commented")), "", ""},
		{"changes requested", "pull_request_review/submitted", "pull_request_review", all(setLabels("task-42"), setReviewState("changes_requested")), "", ""},
		{"a review dismissed", "pull_request_review/dismissed", "pull_request_review", setLabels("task-42"), "", ""},
		{"approved without a task", "pull_request_review/submitted", "pull_request_review", setReviewState("approved"), "", ""},
		{"a review payload sent as pull_request", "pull_request_review/submitted", "pull_request", all(setLabels("task-42"), setReviewState("approved")), "", ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			delivery := fmt.Sprintf("72d3162e-cc78-11e3-81ab-4c9367dc%04d", i)
			event := deliver(t, c.githubEvent, delivery, payload(t, c.payload, c.change))
			for stage, sensor := range sensors {
				created := fire(t, sensor, event)
				if stage != c.stage {
					if len(created) != 0 {
						t.Errorf("the sensor of %s fired: %v", stage, created)
					}
					continue
				}
				want := expectedWorkflow(stage, c.taskID, "Codertocat/Hello-World", delivery, c.githubEvent)
				if len(created) != 1 || !reflect.DeepEqual(created[0], want) {
					got, _ := json.MarshalIndent(created, "", "  ")
					wanted, _ := json.MarshalIndent(want, "", "  ")
					t.Errorf("the sensor of %s created\n%s\nwant\n%s", stage, got, wanted)
				}
			}
		})
	}
}

// expectedWorkflow is the stage-resume Workflow a matching event must yield, field by field.
func expectedWorkflow(stage, taskID, repository, delivery, githubEvent string) map[string]any {
	parameter := func(name, value string) map[string]any { return map[string]any{"name": name, "value": value} }
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
			"arguments": map[string]any{"parameters": []any{
				parameter("stage", stage),
				parameter("task-id", taskID),
				parameter("repository", repository),
				parameter("delivery-id", delivery),
				parameter("event", githubEvent),
			}},
		},
	}
}
