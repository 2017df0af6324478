// render-sensors writes workflow-templates/task-id.jq, the task-id rule, into every Sensor of
// workflow-templates/ as its dependency's transform (`make render-sensors`).
//
//	render-sensors DIR
package main

import (
	"fmt"
	"os"

	"stagectl.dev/tests/events/taskid"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: render-sensors workflow-templates")
		os.Exit(2)
	}
	if err := render(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "render-sensors:", err)
		os.Exit(1)
	}
}

func render(manifests string) error {
	rule, err := taskid.Rule(manifests)
	if err != nil {
		return err
	}
	files, err := taskid.SensorFiles(manifests)
	if err != nil {
		return err
	}
	for _, file := range files {
		sensor, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		rendered, err := taskid.Render(string(sensor), rule)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if err := os.WriteFile(file, []byte(rendered), 0o644); err != nil {
			return err
		}
	}
	return nil
}
