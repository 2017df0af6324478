//! What GitHub says about a task, as plain data, and what it means for a play that waits: the
//! task-id rule the Sensors use (workflow-templates/task-id.jq), the event each waiting stage
//! awaits, and whether it has happened. `reconcile` reads the facts; these decide.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::event::{Awaited, EventFacts};
use crate::pass::Pass;
use crate::stage::Stage;

/// A pull request, as far as a play cares. Serialized as reconcile's cache keeps it (the
/// fields added later default, so that a cache written before still reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    #[serde(rename = "branch")]
    pub head_ref: String,
    pub labels: Vec<String>,
    /// The commit at its head: where its check suites and workflow runs are.
    #[serde(default)]
    pub head_sha: String,
    /// Merged (a closed pull request, read for a merge gate).
    #[serde(default)]
    pub merged: bool,
    /// When GitHub last changed it: how far back closed pull requests are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

/// A check suite or workflow run that completed on a pull request's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completed {
    /// The workflow's name (empty for a check suite).
    pub name: String,
    pub conclusion: String,
    /// When it completed (its `updated_at`): which pass of a play it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

/// A label added to a pull request, as its issue's events list it: read for a play in a later
/// pass, where a label still on from an earlier pass says nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labelled {
    pub label: String,
    pub at: Option<Timestamp>,
}

/// A commit of a pull request, as it lists them: read for a play in a later pass, whose
/// implementer pushes to the pull request opened in the first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// Its committer's date.
    pub at: Option<Timestamp>,
}

/// One review of a pull request, in the order the REST API lists them (oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The reviewer's account id: a login can change, the id cannot.
    pub reviewer: u64,
    pub state: ReviewState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<Timestamp>,
}

/// A review's state, as the REST API writes it (APPROVED, CHANGES_REQUESTED, ...); one GitHub
/// adds later is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReviewState {
    Approved,
    ChangesRequested,
    Commented,
    Dismissed,
    Pending,
    #[serde(other)]
    Other,
}

impl ReviewState {
    /// Whether the review replaces the reviewer's earlier position: all but a comment and a
    /// pending review do, a state unknown to stagectl too (it is no approval).
    fn takes_a_position(self) -> bool {
        !matches!(self, Self::Commented | Self::Pending)
    }
}

/// The task a pull request names: its one `task-<id>` label (two different ones name none:
/// never guessed), else its head branch `task-<id>`, `task-<id>-…` or the same under
/// `feature/`; `<id>` ASCII letters and digits. tests/vectors/task-id.json holds the cases
/// both this and the Sensors' rule must give.
pub(crate) fn task_of(pull: &PullRequest) -> Option<String> {
    let mut labelled: Vec<&str> = pull
        .labels
        .iter()
        .filter_map(|label| label.strip_prefix("task-"))
        .filter(|id| is_id(id))
        .collect();
    labelled.sort_unstable();
    labelled.dedup();
    match labelled.as_slice() {
        [one] => return Some((*one).to_string()),
        [] => {}
        _ => return None,
    }
    let branch = pull
        .head_ref
        .strip_prefix("feature/")
        .unwrap_or(&pull.head_ref);
    let rest = branch.strip_prefix("task-")?;
    let (id, suffix) = match rest.split_once('-') {
        Some((id, suffix)) => (id, Some(suffix)),
        None => (rest, None),
    };
    (is_id(id) && suffix.is_none_or(|s| !s.is_empty() && !s.contains('\n'))).then(|| id.to_string())
}

fn is_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// What GitHub lists of one pull request: itself, and what a wait needs beside (its reviews,
/// the check suites and workflow runs that completed on its head, and for a later pass the
/// labels added and the commits); empty when not read. `pass` is the pass of the play asking:
/// only what happened in it counts ([`Pass::admits`]).
#[derive(Debug, Clone, Copy)]
pub struct PullFacts<'a> {
    pub pull: &'a PullRequest,
    pub reviews: &'a [Review],
    pub check_suites: &'a [Completed],
    pub workflow_runs: &'a [Completed],
    pub labelled: &'a [Labelled],
    pub commits: &'a [Commit],
    pub pass: Pass,
}

impl PullFacts<'_> {
    /// Whether what happened at `at` belongs to the play's pass: anything in the first pass
    /// (which began with the play), and in a later one only what is known to have happened
    /// since it began.
    fn in_pass(&self, at: Option<Timestamp>) -> bool {
        self.pass.began.is_none() || (at.is_some() && self.pass.admits(at))
    }

    /// The events this state shows to have happened in the play's pass, as webhooks would have
    /// told them: reconcile asks [`Awaited::is_met_by`] of these, the same question `stagectl
    /// resume` asks of a Sensor's facts.
    pub fn events(&self) -> Vec<EventFacts> {
        let first = self.pass.began.is_none();
        let mut events = Vec::new();
        // An open pull request was opened; in a later pass, what counts is a push since.
        if first {
            events.push(EventFacts::new("pull_request", "opened"));
        } else if self.commits.iter().any(|commit| self.in_pass(commit.at)) {
            events.push(EventFacts::new("pull_request", "synchronize"));
        }
        let labels: Vec<&String> = if first {
            self.pull.labels.iter().collect()
        } else {
            self.labelled
                .iter()
                .filter(|added| self.in_pass(added.at))
                .map(|added| &added.label)
                .collect()
        };
        events.extend(labels.into_iter().map(|label| EventFacts {
            label: Some(label.clone()),
            ..EventFacts::new("pull_request", "labeled")
        }));
        let reviews: Vec<Review> = self
            .reviews
            .iter()
            .filter(|review| self.in_pass(review.submitted_at))
            .cloned()
            .collect();
        for (state, text) in [
            (ReviewState::Approved, "approved"),
            (ReviewState::ChangesRequested, "changes_requested"),
        ] {
            if some_reviewer_stands_at(&reviews, state) {
                events.push(EventFacts {
                    review_state: Some(text.into()),
                    ..EventFacts::new("pull_request_review", "submitted")
                });
            }
        }
        if self.pull.merged && self.in_pass(self.pull.updated_at) {
            events.push(EventFacts {
                merged: Some(true),
                ..EventFacts::new("pull_request", "closed")
            });
        }
        let in_pass = |completed: &&Completed| self.in_pass(completed.updated_at);
        events.extend(
            self.check_suites
                .iter()
                .filter(in_pass)
                .map(|suite| EventFacts {
                    conclusion: Some(suite.conclusion.clone()),
                    ..EventFacts::new("check_suite", "completed")
                }),
        );
        events.extend(
            self.workflow_runs
                .iter()
                .filter(in_pass)
                .map(|run| EventFacts {
                    conclusion: Some(run.conclusion.clone()),
                    workflow: Some(run.name.clone()),
                    ..EventFacts::new("workflow_run", "completed")
                }),
        );
        events
    }

    /// Whether `awaited` has happened on this pull request.
    pub fn shows(&self, awaited: &Awaited) -> bool {
        self.events().iter().any(|event| awaited.is_met_by(event))
    }
}

/// What reconcile reads of GitHub, beyond the repository's open pull requests, to tell whether
/// a wait's event has happened on the task's pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Nothing more: the open pull request itself says it (opened, a label).
    Nothing,
    /// In a later pass: the labels added to it, and when.
    LabelEvents,
    /// In a later pass: its commits, and when.
    Commits,
    Reviews,
    /// The repository's closed pull requests, newest first, back to the play's creation.
    MergedPulls,
    CheckSuites,
    WorkflowRuns,
}

impl Reads {
    /// What to read for `awaited` in a play's `pass`: in a later pass than the first, the pull
    /// request's own state (open, its labels) says nothing of the pass, and its history does.
    pub fn in_pass(awaited: &Awaited, pass: &Pass) -> Self {
        match (Self::of(awaited), awaited, pass.began) {
            (Self::Nothing, Awaited::LabelAdded { .. }, Some(_)) => Self::LabelEvents,
            (Self::Nothing, _, Some(_)) => Self::Commits,
            (reads, ..) => reads,
        }
    }

    pub fn of(awaited: &Awaited) -> Self {
        match awaited {
            Awaited::PullRequestOpened
            | Awaited::PullRequestPushed
            | Awaited::LabelAdded { .. } => Self::Nothing,
            Awaited::ReviewApproved | Awaited::ReviewChangesRequested => Self::Reviews,
            Awaited::PullRequestMerged => Self::MergedPulls,
            Awaited::CheckSuiteCompleted { .. } => Self::CheckSuites,
            Awaited::WorkflowRunCompleted { .. } => Self::WorkflowRuns,
        }
    }
}

/// Whether some reviewer's latest review that takes a position (a COMMENTED or PENDING one does
/// not) is `state`: approved, or changes requested. A dismissed approval no longer counts.
fn some_reviewer_stands_at(reviews: &[Review], state: ReviewState) -> bool {
    let mut latest: Vec<(u64, ReviewState)> = Vec::new();
    for review in reviews {
        if !review.state.takes_a_position() {
            continue;
        }
        match latest
            .iter_mut()
            .find(|(reviewer, _)| *reviewer == review.reviewer)
        {
            Some(entry) => entry.1 = review.state,
            None => latest.push((review.reviewer, review.state)),
        }
    }
    latest.iter().any(|(_, stands)| *stands == state)
}

/// The open pull request of a task among a repository's, if exactly one names it.
pub(crate) fn pull_of_task<'a>(
    pulls: &'a [PullRequest],
    task: &str,
) -> Result<Option<&'a PullRequest>, Vec<u64>> {
    let mine: Vec<&PullRequest> = pulls
        .iter()
        .filter(|pull| task_of(pull).as_deref() == Some(task))
        .collect();
    match mine.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        several => Err(several.iter().map(|pull| pull.number).collect()),
    }
}

/// The delivery id reconcile delivers under: the same for the same event of the same pull
/// request, so that a second run, or a run after the webhook, is a no-op.
pub fn delivery_id(stage: &Stage, pull: &PullRequest, pass: u32) -> String {
    match pass {
        1 => format!("reconcile.{}.pr{}", stage.name(), pull.number),
        n => format!("reconcile.{}.pass{n}.pr{}", stage.name(), pull.number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::Pipeline;

    fn approved(reviews: &[Review]) -> bool {
        some_reviewer_stands_at(reviews, ReviewState::Approved)
    }

    impl<'a> PullFacts<'a> {
        /// The pull request alone, in a play's first pass.
        fn of(pull: &'a PullRequest) -> Self {
            PullFacts {
                pull,
                reviews: &[],
                check_suites: &[],
                workflow_runs: &[],
                labelled: &[],
                commits: &[],
                pass: Pass::default(),
            }
        }
    }

    fn pull(labels: &[&str], branch: &str) -> PullRequest {
        PullRequest {
            number: 1,
            head_ref: branch.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            head_sha: "abc".into(),
            merged: false,
            updated_at: None,
        }
    }

    #[test]
    fn the_task_id_rule_gives_the_shared_vectors() {
        #[derive(serde::Deserialize)]
        struct Vector {
            labels: Vec<String>,
            branch: String,
            task: String,
        }
        #[derive(serde::Deserialize)]
        struct File {
            vectors: Vec<Vector>,
        }
        let file: File =
            serde_json::from_str(include_str!("../../../tests/vectors/task-id.json")).unwrap();
        assert!(file.vectors.len() > 10);
        for vector in file.vectors {
            let pull = PullRequest {
                head_ref: vector.branch.clone(),
                labels: vector.labels.clone(),
                ..pull(&[], "")
            };
            assert_eq!(
                task_of(&pull).unwrap_or_default(),
                vector.task,
                "labels {:?}, branch {:?}",
                vector.labels,
                vector.branch
            );
        }
    }

    #[test]
    fn the_latest_review_of_each_reviewer_decides() {
        let review = |reviewer, state: &str| Review {
            reviewer,
            state: serde_json::from_value(serde_json::json!(state)).unwrap(),
            submitted_at: None,
        };
        assert!(approved(&[review(1, "APPROVED")]));
        assert!(approved(&[review(1, "APPROVED"), review(1, "COMMENTED")]));
        assert!(!approved(&[
            review(1, "APPROVED"),
            review(1, "A_STATE_GITHUB_ADDS")
        ]));
        assert!(!approved(&[
            review(1, "APPROVED"),
            review(1, "CHANGES_REQUESTED")
        ]));
        assert!(!approved(&[review(1, "APPROVED"), review(1, "DISMISSED")]));
        assert!(approved(&[
            review(1, "CHANGES_REQUESTED"),
            review(2, "APPROVED")
        ]));
        assert!(approved(&[
            review(1, "CHANGES_REQUESTED"),
            review(1, "APPROVED")
        ]));
        assert!(!approved(&[review(1, "COMMENTED"), review(2, "PENDING")]));
        assert!(!approved(&[]));
    }

    #[test]
    fn each_waiting_stage_of_the_play_is_released_by_what_github_shows() {
        let pipeline = Pipeline::default();
        let awaited = |name| pipeline.awaited(&pipeline.stage(name)).unwrap().clone();
        let happened = |name, pull: &PullRequest, reviews: &[Review]| {
            PullFacts {
                reviews,
                ..PullFacts::of(pull)
            }
            .shows(&awaited(name))
        };
        let opened = pull(&["task-4"], "main");
        let labelled = pull(&["task-4", "ready-for-qa"], "main");
        let approval = [Review {
            reviewer: 1,
            state: ReviewState::Approved,
            submitted_at: None,
        }];
        assert!(happened("waiting-pr-created", &opened, &[]));
        assert!(!happened("waiting-ready-for-qa", &opened, &[]));
        assert!(happened("waiting-ready-for-qa", &labelled, &[]));
        assert!(!happened("waiting-pr-approved", &labelled, &[]));
        assert!(happened("waiting-pr-approved", &labelled, &approval));
        assert_eq!(pipeline.awaited(&pipeline.stage("completed")), None);
    }

    #[test]
    fn gates_are_released_by_what_completed_on_the_head_and_by_the_merge() {
        use crate::event::Conclusion;
        let open = pull(&["task-4"], "main");
        let merged = PullRequest {
            merged: true,
            ..open.clone()
        };
        let completed = |name: &str, conclusion: &str| Completed {
            name: name.into(),
            conclusion: conclusion.into(),
            updated_at: None,
        };
        let facts = |pull, suites, runs| PullFacts {
            check_suites: suites,
            workflow_runs: runs,
            ..PullFacts::of(pull)
        };
        let ci = Awaited::CheckSuiteCompleted {
            conclusion: Conclusion::Success,
        };
        let run = Awaited::WorkflowRunCompleted {
            conclusion: Conclusion::Success,
            workflow: Some("CI".into()),
        };
        let failed = [completed("", "failure")];
        let passed = [completed("", "failure"), completed("", "success")];
        assert!(!facts(&open, &failed, &[]).shows(&ci));
        assert!(facts(&open, &passed, &[]).shows(&ci));
        let runs = [completed("Lint", "success"), completed("CI", "failure")];
        assert!(!facts(&open, &[], &runs).shows(&run));
        let ci_passed = [completed("CI", "success")];
        assert!(facts(&open, &[], &ci_passed).shows(&run));
        assert!(!facts(&open, &[], &[]).shows(&Awaited::PullRequestMerged));
        assert!(facts(&merged, &[], &[]).shows(&Awaited::PullRequestMerged));
    }

    #[test]
    fn a_task_with_two_open_pull_requests_is_not_guessed() {
        let pulls = [
            PullRequest {
                number: 7,
                ..pull(&["task-4"], "main")
            },
            PullRequest {
                number: 8,
                ..pull(&[], "task-4-again")
            },
            PullRequest {
                number: 9,
                ..pull(&[], "task-5-other")
            },
        ];
        assert_eq!(pull_of_task(&pulls, "4"), Err(vec![7, 8]));
        assert_eq!(pull_of_task(&pulls, "5").unwrap().unwrap().number, 9);
        assert_eq!(pull_of_task(&pulls, "6"), Ok(None));
    }

    #[test]
    fn the_delivery_id_is_a_valid_token_and_stable() {
        let pipeline = Pipeline::default();
        let id = delivery_id(&pipeline.stage("waiting-ready-for-qa"), &pull(&[], "x"), 1);
        assert_eq!(id, "reconcile.waiting-ready-for-qa.pr1");
        crate::labels::validate_token("delivery id", &id).unwrap();
        let later = delivery_id(&pipeline.stage("waiting-ready-for-qa"), &pull(&[], "x"), 2);
        assert_eq!(later, "reconcile.waiting-ready-for-qa.pass2.pr1");
        crate::labels::validate_token("delivery id", &later).unwrap();
    }
}
