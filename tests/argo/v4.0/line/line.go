// Package line is one Argo Workflows release line's validation and expression code behind the
// calls tests/argo/checks makes, whose signatures differ between lines (v4 passes a context
// carrying its logger everywhere). This is the v4.0 line's.
package line

import (
	"context"
	"fmt"

	"github.com/argoproj/argo-workflows/v4/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v4/util/expr/env"
	"github.com/argoproj/argo-workflows/v4/util/logging"
	"github.com/argoproj/argo-workflows/v4/util/template"
	"github.com/argoproj/argo-workflows/v4/workflow/validate"
)

const Name = "v4.0"

type (
	Workflow         = v1alpha1.Workflow
	WorkflowTemplate = v1alpha1.WorkflowTemplate
	CronWorkflow     = v1alpha1.CronWorkflow
)

// Templates resolves workflowTemplateRefs among the manifests under test, as the offline
// linter does.
type Templates map[string]*WorkflowTemplate

func (t Templates) Get(_ context.Context, name string) (*WorkflowTemplate, error) {
	if template, ok := t[name]; ok {
		return template, nil
	}
	return nil, fmt.Errorf("no WorkflowTemplate %q among the manifests", name)
}

type noClusterTemplates struct{}

func (noClusterTemplates) Get(_ context.Context, name string) (*v1alpha1.ClusterWorkflowTemplate, error) {
	return nil, fmt.Errorf("no ClusterWorkflowTemplate %q", name)
}

var lint = validate.ValidateOpts{Lint: true}

// LintTemplate is `argo lint --offline` of a WorkflowTemplate.
func LintTemplate(t Templates, template *WorkflowTemplate) error {
	return validate.ValidateWorkflowTemplate(logging.InitLoggerInContext(), t, noClusterTemplates{}, template, nil, lint)
}

// LintWorkflow is `argo lint --offline` of a Workflow.
func LintWorkflow(t Templates, workflow *Workflow) error {
	return validate.ValidateWorkflow(logging.InitLoggerInContext(), t, noClusterTemplates{}, workflow, nil, lint)
}

// ValidateCron is the controller's check of a CronWorkflow.
func ValidateCron(t Templates, cron *CronWorkflow) error {
	return validate.ValidateCronWorkflow(logging.InitLoggerInContext(), t, noClusterTemplates{}, cron, nil)
}

// ExprEnv is the environment the controller evaluates workflowMetadata.labelsFrom
// expressions in, given the workflow's global parameters.
func ExprEnv(globals map[string]string) map[string]any {
	return env.GetFuncMap(template.EnvMap(globals))
}
