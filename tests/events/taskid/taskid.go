// Package taskid keeps the one definition of the task-id rule (workflow-templates/task-id.jq)
// and the copies of it every Sensor carries as its dependency's jq transform: Argo Events has no
// way for Sensors to share one, so `stagectl pipeline render` writes the copies and a test checks them.
package taskid

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// The line that opens a Sensor's copy of the rule; the copy is every line after it indented
// deeper.
var opening = regexp.MustCompile(`(?m)^( *)jq: \|-\n`)

// Rule reads the definition from the directory of the manifests.
func Rule(manifests string) (string, error) {
	rule, err := os.ReadFile(filepath.Join(manifests, "task-id.jq"))
	return strings.TrimRight(string(rule), "\n"), err
}

// SensorFiles are the Sensors that carry a copy.
func SensorFiles(manifests string) ([]string, error) {
	return filepath.Glob(filepath.Join(manifests, "sensor-*.yaml"))
}

// Render returns the Sensor's manifest with its copy of the rule replaced by rule.
func Render(sensor, rule string) (string, error) {
	found := opening.FindAllStringSubmatchIndex(sensor, -1)
	if len(found) != 1 {
		return "", fmt.Errorf("want one `jq: |-` transform, found %d", len(found))
	}
	keyIndent := found[0][3] - found[0][2]
	start := found[0][1]
	end := start
	for end < len(sensor) {
		next := strings.IndexByte(sensor[end:], '\n')
		line := sensor[end : end+next]
		if next < 0 || len(line)-len(strings.TrimLeft(line, " ")) <= keyIndent && strings.TrimSpace(line) != "" {
			break
		}
		end += next + 1
	}
	indent := strings.Repeat(" ", keyIndent+2)
	var copy strings.Builder
	for _, line := range strings.Split(rule, "\n") {
		if line == "" {
			copy.WriteString("\n")
			continue
		}
		copy.WriteString(indent + line + "\n")
	}
	return sensor[:start] + copy.String() + sensor[end:], nil
}
