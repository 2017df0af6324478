// github-event sends the GitHub webhook an agent's real counterpart causes, as GitHub sends it:
// the real octokit payload of the event, made to name the task and repository, POSTed signed to
// an EventSource, signed as GitHub signs it (webhook.SignSHA256). It prints what the receiver
// answered on one line, and exits 0 on a 2xx, 1 on another status, 2 on bad arguments, 3 when no
// receiver answered. Test infrastructure, not part of stagectl.
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
	"io"
	"net/http"
	"os"
	"strings"
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
	signature := flag.String("signature", "sha256", "sha256, sha1-only, wrong or none (see send)")
	occurredAt := flag.String("occurred-at", "", "when the event happened on GitHub (RFC 3339); default now")
	flag.Parse()
	if *occurredAt == "" {
		*occurredAt = time.Now().UTC().Format(time.RFC3339)
	} else if _, err := time.Parse(time.RFC3339, *occurredAt); err != nil {
		fmt.Fprintln(os.Stderr, "error: -occurred-at:", err)
		os.Exit(2)
	}
	what, known := kinds[*kind]
	if signatures[*signature] == nil {
		fmt.Fprintln(os.Stderr, "error: -signature is sha256, sha1-only, wrong or none, not", *signature)
		os.Exit(2)
	}
	if !known || *task == "" || *repository == "" || *delivery == "" || *payloads == "" || *url == "" || *secretFile == "" {
		fmt.Fprintln(os.Stderr, "error: give -event pr-opened|pushed|ready-for-qa|approved|changes-requested|checks-passed|checks-failed|merged, -task, -repository, -delivery, -payloads, -url and -secret-file")
		os.Exit(2)
	}
	changes := append(what.changes(*task), webhook.SetRepository(*repository), webhook.SetOccurredAt(*occurredAt))
	body, err := webhook.Payload(*payloads, what.payload, changes...)
	if err == nil {
		err = send(body, what.githubEvent, *delivery, *url, *secretFile, *signature)
	}
	var unanswered noAnswer
	switch {
	case errors.As(err, &unanswered):
		fmt.Println(err)
		os.Exit(3)
	case errors.Is(err, errRefused):
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// The signatures a sender may give, so that a test can see what the receiver accepts: what each
// sets of the headers, keyed by the secret.
var signatures = map[string]func(header http.Header, key string, payload []byte){
	// What GitHub sends with a secret: X-Hub-Signature-256 and the legacy SHA-1 X-Hub-Signature.
	"sha256": func(header http.Header, key string, payload []byte) {
		header.Set("X-Hub-Signature-256", webhook.SignSHA256(key, payload))
		header.Set("X-Hub-Signature", webhook.SignSHA1(key, payload))
	},
	// Only the legacy X-Hub-Signature, correctly made.
	"sha1-only": func(header http.Header, key string, payload []byte) {
		header.Set("X-Hub-Signature", webhook.SignSHA1(key, payload))
	},
	// X-Hub-Signature-256 made with another secret.
	"wrong": func(header http.Header, key string, payload []byte) {
		header.Set("X-Hub-Signature-256", webhook.SignSHA256(key+"-not", payload))
	},
	// No signature header.
	"none": func(http.Header, string, []byte) {},
}

// noAnswer is a request no receiver answered: the process exits 3, so that a caller can tell it
// from a refusal.
type noAnswer struct{ error }

// errRefused is an answer other than a 2xx, already printed.
var errRefused = errors.New("refused")

// A receiver that takes a request and never answers fails the send rather than hang the agent.
var client = &http.Client{Timeout: time.Minute}

// send POSTs the payload as GitHub does: JSON with GitHub's headers, signed with the secret as
// signature says (signatures). It prints the answer's status and body on one line.
func send(body map[string]any, githubEvent, delivery, url, secretFile, signature string) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		return err
	}
	key := strings.TrimSuffix(string(secret), "\n")
	request, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	for name, value := range map[string]string{
		"Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/stagectl-tests",
		"X-GitHub-Event": githubEvent, "X-GitHub-Delivery": delivery, "X-GitHub-Hook-ID": "1",
	} {
		request.Header.Set(name, value)
	}
	signatures[signature](request.Header, key, payload)
	response, err := client.Do(request)
	if err != nil {
		return noAnswer{fmt.Errorf("no answer from %s: %w", url, err)}
	}
	answer, err := io.ReadAll(response.Body)
	response.Body.Close()
	if err != nil {
		return err
	}
	fmt.Println(response.StatusCode, strings.Join(strings.Fields(string(answer)), " "))
	if response.StatusCode/100 != 2 {
		return errRefused
	}
	return nil
}
