// github-event sends the GitHub webhook an agent's real counterpart causes, as GitHub sends it:
// the real octokit payload of the event, made to name the task and repository, POSTed signed to
// an EventSource by tests/github/send-webhook.mjs (@octokit/webhooks-methods). It prints what the
// receiver answered, and exits as the sender does (0 on a 2xx). Test infrastructure, not part of
// stagectl.
//
//	github-event -event pr-opened|pushed|ready-for-qa|approved|changes-requested|checks-passed|checks-failed|merged \
//	  -task 42 -repository acme/widgets -delivery ID -payloads tests/events/testdata/github -url URL \
//	  -secret-file FILE [-signature sha256|sha1-only|wrong|none] [-occurred-at RFC3339]
//
// The event happens now (its payload's times say so), or at -occurred-at: a webhook GitHub
// delivers late, or redelivers, keeps the time its event happened.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"stagectl.dev/tests/events/webhook"
)

// What each agent's real counterpart does on GitHub: the payload it causes, its event name, and
// how the payload is made to name the task.
var kinds = map[string]struct {
	payload, githubEvent string
	changes              func(task string) []webhook.Change
}{
	"pr-opened": {"pull_request/opened", "pull_request", func(task string) []webhook.Change {
		return []webhook.Change{webhook.SetLabels("task-" + task), webhook.SetBranch("task-" + task + "-implementation")}
	}},
	// A later pass: Rex pushes to the pull request he opened.
	"pushed": {"pull_request/synchronize", "pull_request", func(task string) []webhook.Change {
		return []webhook.Change{webhook.SetLabels("task-" + task), webhook.SetBranch("task-" + task + "-implementation")}
	}},
	"ready-for-qa": {"pull_request/labeled", "pull_request", func(task string) []webhook.Change {
		return []webhook.Change{webhook.SetLabels("task-"+task, "ready-for-qa"), webhook.SetLabelEvent("ready-for-qa")}
	}},
	"approved": {"pull_request_review/submitted", "pull_request_review", func(task string) []webhook.Change {
		return []webhook.Change{webhook.SetLabels("task-" + task), webhook.SetReviewState("approved")}
	}},
	"changes-requested": {"pull_request_review/submitted", "pull_request_review", func(task string) []webhook.Change {
		return []webhook.Change{webhook.SetLabels("task-" + task), webhook.SetReviewState("changes_requested")}
	}},
	// CI on the pull request's head: a check suite names its branch, not the pull request's labels.
	"checks-passed": {"check_suite/completed", "check_suite", func(task string) []webhook.Change {
		return []webhook.Change{webhook.SetHeadBranch("check_suite", "task-"+task+"-implementation"), webhook.SetConclusion("check_suite", "success")}
	}},
	"checks-failed": {"check_suite/completed", "check_suite", func(task string) []webhook.Change {
		return []webhook.Change{webhook.SetHeadBranch("check_suite", "task-"+task+"-implementation"), webhook.SetConclusion("check_suite", "failure")}
	}},
	"merged": {"pull_request/closed", "pull_request", func(task string) []webhook.Change {
		return []webhook.Change{webhook.SetLabels("task-" + task), webhook.SetBranch("task-" + task + "-implementation"), webhook.SetMerged(true)}
	}},
}

func main() {
	kind := flag.String("event", "", "pr-opened, pushed, ready-for-qa, approved, changes-requested, checks-passed, checks-failed or merged")
	task := flag.String("task", "", "the task id the pull request names")
	repository := flag.String("repository", "", "OWNER/REPO the webhook comes from")
	delivery := flag.String("delivery", "", "the X-GitHub-Delivery id")
	payloads := flag.String("payloads", "", "the directory of the GitHub payloads (tests/events/testdata/github)")
	url := flag.String("url", "", "the EventSource's webhook URL")
	secretFile := flag.String("secret-file", "", "the file holding the webhook secret")
	signature := flag.String("signature", "sha256", "sha256, sha1-only, wrong or none (see send-webhook.mjs)")
	occurredAt := flag.String("occurred-at", "", "when the event happened on GitHub (RFC 3339); default now")
	flag.Parse()
	if *occurredAt == "" {
		*occurredAt = time.Now().UTC().Format(time.RFC3339)
	} else if _, err := time.Parse(time.RFC3339, *occurredAt); err != nil {
		fmt.Fprintln(os.Stderr, "error: -occurred-at:", err)
		os.Exit(2)
	}
	what, known := kinds[*kind]
	if !known || *task == "" || *repository == "" || *delivery == "" || *payloads == "" || *url == "" || *secretFile == "" {
		fmt.Fprintln(os.Stderr, "error: give -event pr-opened|pushed|ready-for-qa|approved|changes-requested|checks-passed|checks-failed|merged, -task, -repository, -delivery, -payloads, -url and -secret-file")
		os.Exit(2)
	}
	changes := append(what.changes(*task), webhook.SetRepository(*repository), webhook.SetOccurredAt(*occurredAt))
	body, err := webhook.Payload(*payloads, what.payload, changes...)
	if err == nil {
		err = send(body, what.githubEvent, *delivery, *url, *secretFile, *signature)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func send(body map[string]any, githubEvent, delivery, url, secretFile, signature string) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	executable, err := os.Executable()
	if err != nil {
		return err
	}
	// tests/<dir>/bin/github-event → tests/github/send-webhook.mjs
	sender := filepath.Join(filepath.Dir(executable), "..", "..", "github", "send-webhook.mjs")
	command := exec.Command("node", sender, "--url", url, "--secret-file", secretFile,
		"--event", githubEvent, "--delivery", delivery, "--signature", signature)
	command.Stdin = bytes.NewReader(payload)
	command.Stdout, command.Stderr = os.Stdout, os.Stderr
	return command.Run()
}
