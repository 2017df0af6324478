//! The GitHub events a pipeline's waits can name, and the one rule that says whether an event
//! releases a wait. The webhook path (a Sensor's facts, checked by `stagectl resume`) and
//! reconcile (GitHub's state, read as the events it implies) both decide with [`Awaited::is_met_by`];
//! the Sensors' filters are rendered from the same values ([`Awaited::sensor_filters`]).

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::labels::shorten;

/// How a check suite or workflow run completed, as GitHub writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    Success,
    Failure,
    Neutral,
    Cancelled,
    TimedOut,
    ActionRequired,
    Stale,
    Skipped,
    StartupFailure,
}

impl Conclusion {
    pub const ALL: [Conclusion; 9] = [
        Self::Success,
        Self::Failure,
        Self::Neutral,
        Self::Cancelled,
        Self::TimedOut,
        Self::ActionRequired,
        Self::Stale,
        Self::Skipped,
        Self::StartupFailure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Neutral => "neutral",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
            Self::ActionRequired => "action_required",
            Self::Stale => "stale",
            Self::Skipped => "skipped",
            Self::StartupFailure => "startup_failure",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl fmt::Display for Conclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The event a waiting stage awaits: the vocabulary of pipeline definitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Awaited {
    /// A pull request of the task was opened.
    PullRequestOpened,
    /// The task's pull request got new commits: it was opened (or reopened), or pushed to. What
    /// an implementer's pass ends with, the first (the opening) or a later one (a push).
    PullRequestPushed,
    /// A label was added to the task's pull request.
    LabelAdded { label: String },
    /// A reviewer approved the task's pull request.
    ReviewApproved,
    /// A reviewer requested changes to the task's pull request.
    ReviewChangesRequested,
    /// The task's pull request was merged.
    PullRequestMerged,
    /// A check suite (any CI's) on the pull request's head completed with `conclusion`.
    CheckSuiteCompleted { conclusion: Conclusion },
    /// A GitHub Actions workflow run on the pull request's head completed with `conclusion`
    /// (of the workflow named `workflow`, when given).
    WorkflowRunCompleted {
        conclusion: Conclusion,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workflow: Option<String>,
    },
}

/// What an event does to the wait it is for: releases it (its `releasedBy`), fails the play
/// there (its `failedBy`: a failed check at a CI gate), or sends the play back to an earlier
/// stage for another pass (its `sentBackBy`: a review requesting changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    #[default]
    Releases,
    Fails,
    SendsBack,
}

impl Verdict {
    pub fn is_releases(&self) -> bool {
        *self == Self::Releases
    }
}

/// What a webhook delivery says, as far as a wait cares: the Sensor passes these fields to
/// `stagectl resume`, and reconcile builds them from what GitHub's REST API lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFacts {
    /// The `X-GitHub-Event` header: pull_request, pull_request_review, check_suite, ...
    pub event: String,
    /// The payload's `action`: opened, labeled, submitted, closed, completed, ...
    pub action: String,
    /// `label.name` of a labeled event.
    pub label: Option<String>,
    /// `review.state` of a review (approved, changes_requested, commented), in any case.
    pub review_state: Option<String>,
    /// `pull_request.merged` of a closed event.
    pub merged: Option<bool>,
    /// `check_suite.conclusion` or `workflow_run.conclusion`.
    pub conclusion: Option<String>,
    /// `workflow_run.name`.
    pub workflow: Option<String>,
    /// When it happened on GitHub (the review's `submitted_at`, the pull request's, check
    /// suite's or workflow run's `updated_at`): an event that happened before the play's pass
    /// began is that earlier pass's, whenever it is delivered.
    pub occurred_at: Option<Timestamp>,
}

impl EventFacts {
    pub fn new(event: &str, action: &str) -> Self {
        Self {
            event: event.into(),
            action: action.into(),
            ..Self::default()
        }
    }
}

impl fmt::Display for EventFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.event, self.action)?;
        let fields = [
            ("label", self.label.as_deref()),
            ("review state", self.review_state.as_deref()),
            (
                "merged",
                self.merged.map(|m| if m { "true" } else { "false" }),
            ),
            ("conclusion", self.conclusion.as_deref()),
            ("workflow", self.workflow.as_deref()),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                write!(f, ", {name} {:?}", shorten(value))?;
            }
        }
        Ok(())
    }
}

/// A condition a Sensor puts on a delivery before it starts anything: a path into the event
/// (the payload under `body.`, the headers under `headers.`) and an anchored pattern, or for a
/// boolean field its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorFilter {
    pub path: &'static str,
    /// Argo Events' filter type: `string` (an RE2 pattern) or `bool`.
    pub kind: &'static str,
    pub pattern: String,
}

/// A payload field a Sensor hands to `stagectl resume`, as the flag it fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorFact {
    pub flag: &'static str,
    /// The path into the event: under `body.` the payload, under `headers.` the headers.
    pub path: &'static str,
}

impl Awaited {
    /// The `X-GitHub-Event` of the webhook.
    pub fn github_event(&self) -> &'static str {
        match self {
            Self::PullRequestOpened
            | Self::PullRequestPushed
            | Self::LabelAdded { .. }
            | Self::PullRequestMerged => "pull_request",
            Self::ReviewApproved | Self::ReviewChangesRequested => "pull_request_review",
            Self::CheckSuiteCompleted { .. } => "check_suite",
            Self::WorkflowRunCompleted { .. } => "workflow_run",
        }
    }

    /// The payload's `action`s that can be this event; the first is what reconcile delivers.
    pub fn actions(&self) -> &'static [&'static str] {
        match self {
            Self::PullRequestOpened => &["opened"],
            Self::PullRequestPushed => &["opened", "reopened", "synchronize"],
            Self::LabelAdded { .. } => &["labeled"],
            Self::ReviewApproved | Self::ReviewChangesRequested => &["submitted"],
            Self::PullRequestMerged => &["closed"],
            Self::CheckSuiteCompleted { .. } | Self::WorkflowRunCompleted { .. } => &["completed"],
        }
    }

    /// The payload field that says when the event happened on GitHub ([`EventFacts::occurred_at`]).
    pub fn occurred_at_path(&self) -> &'static str {
        match self.github_event() {
            "pull_request_review" => "body.review.submitted_at",
            "check_suite" => "body.check_suite.updated_at",
            "workflow_run" => "body.workflow_run.updated_at",
            _ => "body.pull_request.updated_at",
        }
    }

    /// Whether the event `facts` describe releases a wait for this one. The only place that
    /// decides it.
    pub fn is_met_by(&self, facts: &EventFacts) -> bool {
        if facts.event != self.github_event() || !self.actions().contains(&facts.action.as_str()) {
            return false;
        }
        let is = |field: &Option<String>, wanted: &str| field.as_deref() == Some(wanted);
        let narrowed_to = |field: &Option<String>, wanted: &Option<String>| {
            wanted.as_ref().is_none_or(|wanted| is(field, wanted))
        };
        let reviewed = |wanted: &str| {
            facts
                .review_state
                .as_deref()
                .is_some_and(|state| state.eq_ignore_ascii_case(wanted))
        };
        match self {
            Self::PullRequestOpened | Self::PullRequestPushed => true,
            Self::LabelAdded { label } => is(&facts.label, label),
            Self::ReviewApproved => reviewed("approved"),
            Self::ReviewChangesRequested => reviewed("changes_requested"),
            Self::PullRequestMerged => facts.merged == Some(true),
            Self::CheckSuiteCompleted { conclusion } => is(&facts.conclusion, conclusion.as_str()),
            Self::WorkflowRunCompleted {
                conclusion,
                workflow,
            } => {
                is(&facts.conclusion, conclusion.as_str()) && narrowed_to(&facts.workflow, workflow)
            }
        }
    }

    /// The facts of a delivery of exactly this event: what reconcile hands resume for an event
    /// GitHub's state shows, so that resume decides by the same rule as for a webhook.
    pub fn facts(&self) -> EventFacts {
        let mut facts = EventFacts::new(self.github_event(), self.actions()[0]);
        match self {
            Self::PullRequestOpened | Self::PullRequestPushed => {}
            Self::LabelAdded { label } => facts.label = Some(label.clone()),
            Self::ReviewApproved => facts.review_state = Some("approved".into()),
            Self::ReviewChangesRequested => facts.review_state = Some("changes_requested".into()),
            Self::PullRequestMerged => facts.merged = Some(true),
            Self::CheckSuiteCompleted { conclusion } => {
                facts.conclusion = Some(conclusion.as_str().into());
            }
            Self::WorkflowRunCompleted {
                conclusion,
                workflow,
            } => {
                facts.conclusion = Some(conclusion.as_str().into());
                facts.workflow.clone_from(workflow);
            }
        }
        facts
    }

    /// Whether one event could release both waits: then which wait it is for would be a guess.
    pub(crate) fn overlaps(&self, other: &Awaited) -> bool {
        let either_open =
            |a: &Option<String>, b: &Option<String>| a.is_none() || b.is_none() || a == b;
        match (self, other) {
            (
                Self::WorkflowRunCompleted {
                    conclusion: c1,
                    workflow: w1,
                },
                Self::WorkflowRunCompleted {
                    conclusion: c2,
                    workflow: w2,
                },
            ) => c1 == c2 && either_open(w1, w2),
            // Both are met by the opening of the pull request.
            (Self::PullRequestOpened, Self::PullRequestPushed)
            | (Self::PullRequestPushed, Self::PullRequestOpened) => true,
            _ => self == other,
        }
    }

    /// What a Sensor checks before it starts a stage-resume workflow: exactly what
    /// [`Awaited::is_met_by`] checks, so that no pod starts for an event that releases nothing.
    pub fn sensor_filters(&self) -> Vec<SensorFilter> {
        let exact = |path, value: &str| SensorFilter {
            path,
            kind: "string",
            pattern: format!("^{}$", regex_escape(value)),
        };
        let actions: Vec<String> = self.actions().iter().map(|a| regex_escape(a)).collect();
        let mut filters = vec![
            exact("headers.X-Github-Event.0", self.github_event()),
            SensorFilter {
                path: "body.action",
                kind: "string",
                pattern: match actions.as_slice() {
                    [one] => format!("^{one}$"),
                    several => format!("^({})$", several.join("|")),
                },
            },
        ];
        let review = |state: &str| SensorFilter {
            path: "body.review.state",
            kind: "string",
            pattern: format!("^(?i:{state})$"),
        };
        match self {
            Self::PullRequestOpened | Self::PullRequestPushed => {}
            Self::LabelAdded { label } => filters.push(exact("body.label.name", label)),
            Self::ReviewApproved => filters.push(review("approved")),
            Self::ReviewChangesRequested => filters.push(review("changes_requested")),
            Self::PullRequestMerged => filters.push(SensorFilter {
                path: "body.pull_request.merged",
                kind: "bool",
                pattern: "true".into(),
            }),
            Self::CheckSuiteCompleted { conclusion } => {
                filters.push(exact("body.check_suite.conclusion", conclusion.as_str()));
            }
            Self::WorkflowRunCompleted {
                conclusion,
                workflow,
            } => {
                filters.push(exact("body.workflow_run.conclusion", conclusion.as_str()));
                filters.extend(
                    workflow
                        .iter()
                        .map(|name| exact("body.workflow_run.name", name)),
                );
            }
        }
        filters
    }

    /// The payload fields `stagectl resume` needs to check this event itself.
    pub fn sensor_facts(&self) -> Vec<SensorFact> {
        let fact = |flag, path| SensorFact { flag, path };
        let mut facts = vec![
            fact("action", "body.action"),
            fact("occurred-at", self.occurred_at_path()),
        ];
        match self {
            Self::PullRequestOpened | Self::PullRequestPushed => {}
            Self::LabelAdded { .. } => facts.push(fact("label", "body.label.name")),
            Self::ReviewApproved | Self::ReviewChangesRequested => {
                facts.push(fact("review-state", "body.review.state"));
            }
            Self::PullRequestMerged => facts.push(fact("merged", "body.pull_request.merged")),
            Self::CheckSuiteCompleted { .. } => {
                facts.push(fact("conclusion", "body.check_suite.conclusion"));
            }
            Self::WorkflowRunCompleted { .. } => {
                facts.push(fact("conclusion", "body.workflow_run.conclusion"));
                facts.push(fact("workflow", "body.workflow_run.name"));
            }
        }
        facts
    }
}

impl fmt::Display for Awaited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PullRequestOpened => f.write_str("pull request opened"),
            Self::PullRequestPushed => f.write_str("pull request opened or pushed to"),
            Self::LabelAdded { label } => write!(f, "label {label:?} added"),
            Self::ReviewApproved => f.write_str("review approved"),
            Self::ReviewChangesRequested => f.write_str("review requested changes"),
            Self::PullRequestMerged => f.write_str("pull request merged"),
            Self::CheckSuiteCompleted { conclusion } => {
                write!(f, "check suite completed with {conclusion}")
            }
            Self::WorkflowRunCompleted {
                conclusion,
                workflow,
            } => {
                write!(f, "workflow run completed with {conclusion}")?;
                workflow
                    .iter()
                    .try_for_each(|name| write!(f, " (workflow {name:?})"))
            }
        }
    }
}

/// `text` as a literal in a Go (RE2) regular expression, as Argo Events' filters use.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(label: &str) -> EventFacts {
        EventFacts {
            label: Some(label.into()),
            ..EventFacts::new("pull_request", "labeled")
        }
    }

    #[test]
    fn an_event_releases_a_wait_only_when_every_fact_matches() {
        let qa = Awaited::LabelAdded {
            label: "ready-for-qa".into(),
        };
        assert!(qa.is_met_by(&labelled("ready-for-qa")));
        assert!(!qa.is_met_by(&labelled("ready-for-qa-later")));
        assert!(!qa.is_met_by(&EventFacts {
            action: "unlabeled".into(),
            ..labelled("ready-for-qa")
        }));
        assert!(!qa.is_met_by(&EventFacts {
            event: "issues".into(),
            ..labelled("ready-for-qa")
        }));

        let review = |state: &str| EventFacts {
            review_state: Some(state.into()),
            ..EventFacts::new("pull_request_review", "submitted")
        };
        assert!(Awaited::ReviewApproved.is_met_by(&review("approved")));
        assert!(Awaited::ReviewApproved.is_met_by(&review("APPROVED")));
        assert!(!Awaited::ReviewApproved.is_met_by(&review("changes_requested")));

        let closed = |merged| EventFacts {
            merged,
            ..EventFacts::new("pull_request", "closed")
        };
        assert!(Awaited::PullRequestMerged.is_met_by(&closed(Some(true))));
        assert!(!Awaited::PullRequestMerged.is_met_by(&closed(Some(false))));
        assert!(!Awaited::PullRequestMerged.is_met_by(&closed(None)));

        let suite = |conclusion: &str| EventFacts {
            conclusion: Some(conclusion.into()),
            ..EventFacts::new("check_suite", "completed")
        };
        let ci = Awaited::CheckSuiteCompleted {
            conclusion: Conclusion::Success,
        };
        assert!(ci.is_met_by(&suite("success")));
        assert!(!ci.is_met_by(&suite("failure")));

        let run = Awaited::WorkflowRunCompleted {
            conclusion: Conclusion::Failure,
            workflow: Some("CI".into()),
        };
        let ran = |name: &str| EventFacts {
            conclusion: Some("failure".into()),
            workflow: Some(name.into()),
            ..EventFacts::new("workflow_run", "completed")
        };
        assert!(run.is_met_by(&ran("CI")));
        assert!(!run.is_met_by(&ran("Release")));
    }

    /// What reconcile delivers for an event GitHub shows is met by it, and by nothing else.
    #[test]
    fn each_event_meets_its_own_facts_only() {
        let events = [
            Awaited::PullRequestOpened,
            Awaited::ReviewChangesRequested,
            Awaited::LabelAdded {
                label: "ready-for-qa".into(),
            },
            Awaited::ReviewApproved,
            Awaited::PullRequestMerged,
            Awaited::CheckSuiteCompleted {
                conclusion: Conclusion::Success,
            },
            Awaited::CheckSuiteCompleted {
                conclusion: Conclusion::Failure,
            },
            Awaited::WorkflowRunCompleted {
                conclusion: Conclusion::Success,
                workflow: None,
            },
            Awaited::WorkflowRunCompleted {
                conclusion: Conclusion::Failure,
                workflow: Some("CI".into()),
            },
        ];
        for (i, event) in events.iter().enumerate() {
            for (j, other) in events.iter().enumerate() {
                assert_eq!(other.is_met_by(&event.facts()), i == j, "{event} / {other}");
            }
        }
    }

    #[test]
    fn waits_overlap_when_one_event_could_release_both() {
        let run = |workflow: Option<&str>| Awaited::WorkflowRunCompleted {
            conclusion: Conclusion::Success,
            workflow: workflow.map(Into::into),
        };
        assert!(run(None).overlaps(&run(Some("a"))));
        assert!(run(Some("a")).overlaps(&run(Some("a"))));
        assert!(!run(Some("a")).overlaps(&run(Some("b"))));
        assert!(!run(None).overlaps(&Awaited::WorkflowRunCompleted {
            conclusion: Conclusion::Failure,
            workflow: None
        }));
        assert!(Awaited::ReviewApproved.overlaps(&Awaited::ReviewApproved));
        assert!(!Awaited::ReviewApproved.overlaps(&Awaited::PullRequestMerged));
    }

    #[test]
    fn sensor_filters_are_anchored_literals() {
        let filters = Awaited::LabelAdded {
            label: "qa (v1.2)+".into(),
        }
        .sensor_filters();
        assert_eq!(
            filters.last().unwrap().pattern,
            r"^qa \(v1\.2\)\+$",
            "{filters:?}"
        );
        for filter in filters.iter().filter(|f| f.kind == "string") {
            assert!(filter.pattern.starts_with('^') && filter.pattern.ends_with('$'));
        }
    }
}
