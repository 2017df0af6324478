package argo

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/expr-lang/expr"

	"stagectl.dev/tests/argo/line"
)

// The play template computes its labels at submission with expressions; evaluated here the way
// the controller evaluates workflowMetadata.labelsFrom, they must give stagectl's own encoding
// (the same vectors are checked against src/labels.rs).
func TestThePlayLabelsItsRepositoryAsStagectlEncodesIt(t *testing.T) {
	m := load(t, repo+"workflow-templates")
	labelsFrom := m.templates["play"].Spec.WorkflowMetadata.LabelsFrom
	repository, ok := labelsFrom["repository"]
	if !ok {
		t.Fatal("the play does not compute its repository label")
	}
	data, err := os.ReadFile(repo + "tests/vectors/repository-labels.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []struct{ Repository, Label string }
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	for _, vector := range file.Vectors {
		globals := map[string]string{
			"workflow.parameters.repository": vector.Repository,
			"workflow.parameters.task-id":    "42",
		}
		environment := line.ExprEnv(globals)
		for label, from := range map[string]string{"repository": repository.Expression, "task-id": labelsFrom["task-id"].Expression} {
			program, err := expr.Compile(from, expr.Env(environment))
			if err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			got, err := expr.Run(program, environment)
			if err != nil {
				t.Fatalf("%s for %s: %v", label, vector.Repository, err)
			}
			want := vector.Label
			if label == "task-id" {
				want = "42"
			}
			if got != want {
				t.Errorf("%s for %s: the template gives %q, stagectl %q", label, vector.Repository, got, want)
			}
		}
	}
}
