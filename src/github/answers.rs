//! GitHub's answers as its REST API writes them, for the fields reconcile reads, and how each
//! becomes what `core::github` decides with. A field GitHub may leave out defaults.

use serde::Deserialize;

use crate::core::github::{Completed, PullRequest, ReviewState};

/// A pull request as GitHub's API writes it, for the fields reconcile reads.
#[derive(Deserialize)]
pub(super) struct PullFields {
    pub(super) number: u64,
    pub(super) head: HeadFields,
    #[serde(default)]
    pub(super) labels: Vec<LabelFields>,
    #[serde(default)]
    pub(super) merged_at: Option<String>,
    #[serde(default)]
    pub(super) updated_at: Option<jiff::Timestamp>,
}

impl PullFields {
    pub(super) fn into_fact(self) -> PullRequest {
        PullRequest {
            number: self.number,
            head_ref: self.head.branch,
            labels: self.labels.into_iter().map(|label| label.name).collect(),
            head_sha: self.head.sha,
            merged: self.merged_at.is_some(),
            updated_at: self.updated_at,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct HeadFields {
    #[serde(rename = "ref")]
    pub(super) branch: String,
    #[serde(default)]
    pub(super) sha: String,
}

/// A page of check suites or of workflow runs: GitHub wraps these lists in an object.
#[derive(Deserialize)]
pub(super) struct SuitesPage {
    pub(super) check_suites: Vec<RunFields>,
}

#[derive(Deserialize)]
pub(super) struct RunsPage {
    pub(super) workflow_runs: Vec<RunFields>,
}

/// A check suite or a workflow run; only a completed one has a conclusion.
#[derive(Deserialize)]
pub(super) struct RunFields {
    #[serde(default)]
    pub(super) name: Option<String>,
    pub(super) status: Option<String>,
    pub(super) conclusion: Option<String>,
    #[serde(default)]
    pub(super) updated_at: Option<jiff::Timestamp>,
}

pub(super) fn completed(runs: Vec<RunFields>) -> Vec<Completed> {
    runs.into_iter()
        .filter(|run| run.status.as_deref() == Some("completed"))
        .filter_map(|run| {
            Some(Completed {
                name: run.name.unwrap_or_default(),
                conclusion: run.conclusion?,
                updated_at: run.updated_at,
            })
        })
        .collect()
}

#[derive(Deserialize)]
pub(super) struct LabelFields {
    pub(super) name: String,
}

#[derive(Deserialize)]
pub(super) struct ReviewFields {
    pub(super) user: Option<UserFields>,
    pub(super) state: ReviewState,
    #[serde(default)]
    pub(super) submitted_at: Option<jiff::Timestamp>,
}

/// One of an issue's events (labeled, unlabeled, closed, ...), as its events list has them.
#[derive(Deserialize)]
pub(super) struct IssueEventFields {
    pub(super) event: String,
    #[serde(default)]
    pub(super) label: Option<LabelFields>,
    #[serde(default)]
    pub(super) created_at: Option<jiff::Timestamp>,
}

#[derive(Deserialize)]
pub(super) struct CommitFields {
    pub(super) commit: CommitDetails,
}

#[derive(Deserialize)]
pub(super) struct CommitDetails {
    #[serde(default)]
    pub(super) committer: Option<CommitterFields>,
}

#[derive(Deserialize)]
pub(super) struct CommitterFields {
    #[serde(default)]
    pub(super) date: Option<jiff::Timestamp>,
}

#[derive(Deserialize)]
pub(super) struct UserFields {
    pub(super) id: u64,
}
