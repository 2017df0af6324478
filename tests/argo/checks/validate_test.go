// Package argo checks stagectl's WorkflowTemplates and example Workflows with Argo Workflows' own
// validation code — what `argo lint --offline` runs — at the release each line's module pins
// (tests/argo/<line>/go.mod; these files are linked into each, the line's calls in its line/).
package argo

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stagectl.dev/tests/argo/line"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The repository's root, from a line's directory (tests/argo/<line>), where go test runs.
const repo = "../../../"

type manifests struct {
	templates line.Templates
	workflows map[string]*line.Workflow     // by file
	crons     map[string]*line.CronWorkflow // by name
}

func load(t *testing.T, dirs ...string) manifests {
	t.Helper()
	m := manifests{templates: line.Templates{}, workflows: map[string]*line.Workflow{}, crons: map[string]*line.CronWorkflow{}}
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
			for {
				document, err := reader.Read()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				var kind struct{ Kind string }
				if err := yaml.Unmarshal(document, &kind); err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				// Strict: a misspelt field is an error here, not something Argo silently drops.
				switch kind.Kind {
				case "WorkflowTemplate":
					template := &line.WorkflowTemplate{}
					if err := yaml.UnmarshalStrict(document, template); err != nil {
						t.Fatalf("%s: %v", file, err)
					}
					m.templates[template.Name] = template
				case "Workflow":
					workflow := &line.Workflow{}
					if err := yaml.UnmarshalStrict(document, workflow); err != nil {
						t.Fatalf("%s: %v", file, err)
					}
					m.workflows[file] = workflow
				case "CronWorkflow":
					cron := &line.CronWorkflow{}
					if err := yaml.UnmarshalStrict(document, cron); err != nil {
						t.Fatalf("%s: %v", file, err)
					}
					m.crons[cron.Name] = cron
				}
			}
		}
	}
	return m
}

func TestWorkflowTemplatesAndExamplesPassArgoValidation(t *testing.T) {
	m := load(t, repo+"workflow-templates", repo+"examples", repo+"examples/pipelines/gated")
	for _, name := range []string{"play", "stage-resume", "play-gated"} {
		if _, ok := m.templates[name]; !ok {
			t.Fatalf("no WorkflowTemplate %q in workflow-templates/ or examples/", name)
		}
	}
	for name, template := range m.templates {
		if err := line.LintTemplate(m.templates, template); err != nil {
			t.Errorf("WorkflowTemplate %s: %v", name, err)
		}
	}
	if _, ok := m.crons["stagectl-reconcile"]; !ok {
		t.Fatal("no CronWorkflow stagectl-reconcile in workflow-templates/")
	}
	for name, cron := range m.crons {
		if err := line.ValidateCron(m.templates, cron); err != nil {
			t.Errorf("CronWorkflow %s: %v", name, err)
		}
	}
	if len(m.workflows) == 0 {
		t.Fatal("no example Workflow")
	}
	for file, workflow := range m.workflows {
		if err := line.LintWorkflow(m.templates, workflow); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
}

// The validation must be able to fail: broken copies of the play are refused, each for its
// own reason. Templates[1] is a pass: Rex, the stage and wait after him, ...
func TestBrokenCopiesOfThePlayAreRefused(t *testing.T) {
	m := load(t, repo+"workflow-templates")
	breakages := map[string]struct {
		change func(*line.WorkflowTemplate)
		says   string
	}{
		"a dependency on a task that does not exist": {
			change: func(w *line.WorkflowTemplate) { w.Spec.Templates[1].DAG.Tasks[1].Depends = "rexx" },
			says:   "rexx",
		},
		"an undefined parameter": {
			change: func(w *line.WorkflowTemplate) {
				w.Spec.Templates[1].DAG.Tasks[2].When = "{{tasks.update-to-waiting-pr.outputs.parameters.no-such}} != true"
			},
			says: "no-such",
		},
		"a template that does not exist": {
			change: func(w *line.WorkflowTemplate) { w.Spec.Templates[1].DAG.Tasks[0].Template = "no-such-agent" },
			says:   "no-such-agent",
		},
	}
	for name, breakage := range breakages {
		t.Run(name, func(t *testing.T) {
			broken := m.templates["play"].DeepCopy()
			breakage.change(broken)
			err := line.LintTemplate(m.templates, broken)
			if err == nil || !strings.Contains(err.Error(), breakage.says) {
				t.Errorf("got %v, want an error naming %q", err, breakage.says)
			}
		})
	}
}
