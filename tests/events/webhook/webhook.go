// Package webhook turns real GitHub webhook payloads into what stagectl's sensors do with them,
// through Argo Events' own code: the payload wrapped as the GitHub EventSource hands it to
// sensors, each dependency's transform and filters, and the k8s trigger's resource with its
// parameters applied. The sensor tests use it; github-event uses its payloads.
package webhook

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/argoproj/argo-events/pkg/apis/events/v1alpha1"
	"github.com/argoproj/argo-events/pkg/eventsources/events"
	"github.com/argoproj/argo-events/pkg/sensors/dependencies"
	"github.com/argoproj/argo-events/pkg/sensors/triggers"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// SensorFiles names each Sensor of the play under workflow-templates/: one per waiting stage,
// keyed by the stage, and the approval wait's second, whose review sends the play back.
var SensorFiles = map[string]string{
	"waiting-pr-created":            "sensor-waiting-pr-created.yaml",
	"waiting-ready-for-qa":          "sensor-waiting-ready-for-qa.yaml",
	"waiting-pr-approved":           "sensor-waiting-pr-approved.yaml",
	"waiting-pr-approved-sent-back": "sensor-waiting-pr-approved-sent-back.yaml",
}

// StageOf is the waiting stage a Sensor of SensorFiles resumes.
func StageOf(sensor string) string {
	return strings.TrimSuffix(sensor, "-sent-back")
}

// LoadYAML decodes a manifest strictly: a field Argo Events does not know is an error.
func LoadYAML(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// LoadSensors reads the sensors of every waiting stage from dir, by stage.
func LoadSensors(dir string) (map[string]*v1alpha1.Sensor, error) {
	sensors := map[string]*v1alpha1.Sensor{}
	for stage, file := range SensorFiles {
		sensor := &v1alpha1.Sensor{}
		if err := LoadYAML(filepath.Join(dir, file), sensor); err != nil {
			return nil, err
		}
		sensors[stage] = sensor
	}
	return sensors, nil
}

// Change edits a payload's body.
type Change func(body map[string]any)

// Payload reads a real GitHub payload (dir/name.payload.json) and applies the changes.
func Payload(dir, name string, changes ...Change) (map[string]any, error) {
	data, err := os.ReadFile(filepath.Join(dir, name+".payload.json"))
	if err != nil {
		return nil, err
	}
	body := map[string]any{}
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, change := range changes {
		change(body)
	}
	return body, nil
}

func SetLabels(names ...string) Change {
	return func(body map[string]any) {
		labels := []any{}
		for _, name := range names {
			labels = append(labels, map[string]any{"id": 1, "name": name, "color": "ededed", "default": false})
		}
		body["pull_request"].(map[string]any)["labels"] = labels
	}
}

func SetBranch(ref string) Change {
	return func(body map[string]any) {
		body["pull_request"].(map[string]any)["head"].(map[string]any)["ref"] = ref
	}
}

// SetHeadBranch sets the head branch of a check suite or workflow run payload: `kind` is the
// payload's object (check_suite, workflow_run).
func SetHeadBranch(kind, ref string) Change {
	return func(body map[string]any) {
		body[kind].(map[string]any)["head_branch"] = ref
	}
}

// SetConclusion sets how a check suite or workflow run payload's run ended (`kind` as for
// SetHeadBranch).
func SetConclusion(kind, conclusion string) Change {
	return func(body map[string]any) {
		body[kind].(map[string]any)["conclusion"] = conclusion
	}
}

// SetMerged sets whether a closed pull request payload's pull request was merged.
func SetMerged(merged bool) Change {
	return func(body map[string]any) { body["pull_request"].(map[string]any)["merged"] = merged }
}

func SetLabelEvent(name string) Change {
	return func(body map[string]any) {
		body["label"] = map[string]any{"id": 2, "name": name, "color": "0e8a16", "default": false}
	}
}

func SetReviewState(state string) Change {
	return func(body map[string]any) { body["review"].(map[string]any)["state"] = state }
}

// SetOccurredAt makes the event happen at `at` (RFC 3339, as GitHub writes it): the times
// stagectl reads of it, the review's submitted_at and the updated_at of the pull request, check
// suite or workflow run the payload has.
func SetOccurredAt(at string) Change {
	return func(body map[string]any) {
		if review, ok := body["review"].(map[string]any); ok {
			review["submitted_at"] = at
		}
		for _, key := range []string{"pull_request", "check_suite", "workflow_run"} {
			if object, ok := body[key].(map[string]any); ok {
				object["updated_at"] = at
			}
		}
	}
}

// SetRepository makes the payload come from OWNER/REPO.
func SetRepository(fullName string) Change {
	return func(body map[string]any) { body["repository"].(map[string]any)["full_name"] = fullName }
}

// Deliver wraps a payload as the GitHub EventSource hands it to sensors: the request headers
// (Go-canonicalised, with array values) and the body, into which it copies X-GitHub-Event and
// X-GitHub-Delivery. The body is signed with TestSecret, as GitHub signs it.
func Deliver(githubEvent, delivery string, body map[string]any) (*v1alpha1.Event, error) {
	body["X-GitHub-Event"] = githubEvent
	body["X-GitHub-Delivery"] = delivery
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	header := http.Header{}
	header.Set("X-GitHub-Event", githubEvent)
	header.Set("X-GitHub-Delivery", delivery)
	header.Set("Content-Type", "application/json")
	header.Set("X-Hub-Signature-256", SignSHA256(TestSecret, raw))
	message := json.RawMessage(raw)
	data, err := json.Marshal(&events.GithubEventData{Headers: header, Body: &message})
	if err != nil {
		return nil, err
	}
	return &v1alpha1.Event{
		Context: &v1alpha1.EventContext{
			ID: delivery, Source: "github", SpecVersion: "1.0", Type: "github",
			DataContentType: "application/json", Subject: "play", Time: metav1.Time{Time: time.Now()},
		},
		Data: data,
	}, nil
}

// TestSecret is the webhook secret of the in-process deliveries.
const TestSecret = "in-process-test-secret"

// transform applies a dependency's transform as the sensor does, to the CloudEvent it makes of
// the bus's message.
func transform(event *v1alpha1.Event, transformer *v1alpha1.EventDependencyTransformer) (*v1alpha1.Event, error) {
	if transformer == nil {
		return event, nil
	}
	cloudEvent := cloudevents.NewEvent()
	cloudEvent.SetID(event.Context.ID)
	cloudEvent.SetSource(event.Context.Source)
	cloudEvent.SetType(event.Context.Type)
	cloudEvent.SetSubject(event.Context.Subject)
	cloudEvent.SetTime(event.Context.Time.Time)
	if err := cloudEvent.SetData(cloudevents.ApplicationJSON, event.Data); err != nil {
		return nil, err
	}
	transformed, err := dependencies.ApplyTransform(&cloudEvent, transformer)
	if err != nil {
		return nil, err
	}
	out := *event
	out.Data = transformed.Data()
	return &out, nil
}

// Fire evaluates a sensor on one event as the sensor does: each dependency's transform and
// filters, then, for a trigger whose dependency passed, its k8s resource with the parameters
// applied. It returns the
// resources the sensor would create. A filter error is what the sensor logs without triggering;
// it comes back in filterErrors.
func Fire(sensor *v1alpha1.Sensor, event *v1alpha1.Event) (created []map[string]any, filterErrors []error, err error) {
	passed := map[string]*v1alpha1.Event{}
	for _, dependency := range sensor.Spec.Dependencies {
		event, err := transform(event, dependency.Transform)
		if err != nil {
			// The sensor logs a failed transform and drops the event.
			filterErrors = append(filterErrors, fmt.Errorf("%s/%s: transform error: %w", sensor.Name, dependency.Name, err))
			continue
		}
		ok, err := dependencies.Filter(event, dependency.Filters, dependency.FiltersLogicalOperator)
		if err != nil {
			filterErrors = append(filterErrors, fmt.Errorf("%s/%s: filter error: %w", sensor.Name, dependency.Name, err))
		}
		if ok && err == nil {
			passed[dependency.Name] = event
		}
	}
	for _, trigger := range sensor.Spec.Triggers {
		if len(passed) == 0 {
			continue
		}
		trigger := trigger.DeepCopy()
		if err := triggers.ApplyTemplateParameters(passed, trigger); err != nil {
			return nil, filterErrors, fmt.Errorf("%s: template parameters: %w", sensor.Name, err)
		}
		k8s := trigger.Template.K8s
		if k8s == nil || k8s.Operation != v1alpha1.Create {
			return nil, filterErrors, fmt.Errorf("%s: the trigger must be a k8s create", sensor.Name)
		}
		object := &unstructured.Unstructured{}
		if err := object.UnmarshalJSON(k8s.Source.Resource.Value); err != nil {
			return nil, filterErrors, fmt.Errorf("%s: resource: %w", sensor.Name, err)
		}
		if err := triggers.ApplyResourceParameters(passed, k8s.Parameters, object); err != nil {
			return nil, filterErrors, fmt.Errorf("%s: resource parameters: %w", sensor.Name, err)
		}
		created = append(created, object.Object)
	}
	return created, filterErrors, nil
}

// TaskID is the task the sensor's transform finds in the event ("" for none).
func TaskID(sensor *v1alpha1.Sensor, event *v1alpha1.Event) (string, error) {
	transformed, err := transform(event, sensor.Spec.Dependencies[0].Transform)
	if err != nil {
		return "", err
	}
	var data struct {
		TaskID string `json:"taskId"`
	}
	err = json.Unmarshal(transformed.Data, &data)
	return data.TaskID, err
}
