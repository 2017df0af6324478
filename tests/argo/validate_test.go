// Package argo checks stagectl's WorkflowTemplates and example Workflows with Argo Workflows' own
// validation code — what `argo lint --offline` runs — at the release the tests pin.
package argo

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	wfv1 "github.com/argoproj/argo-workflows/v4/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v4/util/logging"
	"github.com/argoproj/argo-workflows/v4/workflow/validate"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// templates resolves workflowTemplateRefs among the manifests under test, as the offline
// linter does.
type templates map[string]*wfv1.WorkflowTemplate

func (t templates) Get(_ context.Context, name string) (*wfv1.WorkflowTemplate, error) {
	if template, ok := t[name]; ok {
		return template, nil
	}
	return nil, fmt.Errorf("no WorkflowTemplate %q among the manifests", name)
}

type noClusterTemplates struct{}

func (noClusterTemplates) Get(_ context.Context, name string) (*wfv1.ClusterWorkflowTemplate, error) {
	return nil, fmt.Errorf("no ClusterWorkflowTemplate %q", name)
}

type manifests struct {
	templates templates
	workflows map[string]*wfv1.Workflow     // by file
	crons     map[string]*wfv1.CronWorkflow // by name
}

func load(t *testing.T, dirs ...string) manifests {
	t.Helper()
	m := manifests{templates: templates{}, workflows: map[string]*wfv1.Workflow{}, crons: map[string]*wfv1.CronWorkflow{}}
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
					template := &wfv1.WorkflowTemplate{}
					if err := yaml.UnmarshalStrict(document, template); err != nil {
						t.Fatalf("%s: %v", file, err)
					}
					m.templates[template.Name] = template
				case "Workflow":
					workflow := &wfv1.Workflow{}
					if err := yaml.UnmarshalStrict(document, workflow); err != nil {
						t.Fatalf("%s: %v", file, err)
					}
					m.workflows[file] = workflow
				case "CronWorkflow":
					cron := &wfv1.CronWorkflow{}
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

func lint(ctx context.Context, m manifests, template *wfv1.WorkflowTemplate) error {
	return validate.ValidateWorkflowTemplate(ctx, m.templates, noClusterTemplates{}, template, nil,
		validate.ValidateOpts{Lint: true})
}

func TestWorkflowTemplatesAndExamplesPassArgoValidation(t *testing.T) {
	ctx := logging.InitLoggerInContext()
	m := load(t, "../../workflow-templates", "../../examples", "../../examples/pipelines/gated")
	for _, name := range []string{"play", "stage-resume", "play-gated"} {
		if _, ok := m.templates[name]; !ok {
			t.Fatalf("no WorkflowTemplate %q in workflow-templates/ or examples/", name)
		}
	}
	for name, template := range m.templates {
		if err := lint(ctx, m, template); err != nil {
			t.Errorf("WorkflowTemplate %s: %v", name, err)
		}
	}
	if _, ok := m.crons["stagectl-reconcile"]; !ok {
		t.Fatal("no CronWorkflow stagectl-reconcile in workflow-templates/")
	}
	for name, cron := range m.crons {
		if err := validate.ValidateCronWorkflow(ctx, m.templates, noClusterTemplates{}, cron, nil); err != nil {
			t.Errorf("CronWorkflow %s: %v", name, err)
		}
	}
	if len(m.workflows) == 0 {
		t.Fatal("no example Workflow")
	}
	for file, workflow := range m.workflows {
		err := validate.ValidateWorkflow(ctx, m.templates, noClusterTemplates{}, workflow, nil,
			validate.ValidateOpts{Lint: true})
		if err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
}

// The validation must be able to fail: broken copies of the play are refused, each for its
// own reason. Templates[1] is a pass: Rex, the stage and wait after him, ...
func TestBrokenCopiesOfThePlayAreRefused(t *testing.T) {
	ctx := logging.InitLoggerInContext()
	m := load(t, "../../workflow-templates")
	breakages := map[string]struct {
		change func(*wfv1.WorkflowTemplate)
		says   string
	}{
		"a dependency on a task that does not exist": {
			change: func(w *wfv1.WorkflowTemplate) { w.Spec.Templates[1].DAG.Tasks[1].Depends = "rexx" },
			says:   "rexx",
		},
		"an undefined parameter": {
			change: func(w *wfv1.WorkflowTemplate) {
				w.Spec.Templates[1].DAG.Tasks[2].When = "{{tasks.update-to-waiting-pr.outputs.parameters.no-such}} != true"
			},
			says: "no-such",
		},
		"a template that does not exist": {
			change: func(w *wfv1.WorkflowTemplate) { w.Spec.Templates[1].DAG.Tasks[0].Template = "no-such-agent" },
			says:   "no-such-agent",
		},
	}
	for name, breakage := range breakages {
		t.Run(name, func(t *testing.T) {
			broken := m.templates["play"].DeepCopy()
			breakage.change(broken)
			err := lint(ctx, m, broken)
			if err == nil || !strings.Contains(err.Error(), breakage.says) {
				t.Errorf("got %v, want an error naming %q", err, breakage.says)
			}
		})
	}
}
