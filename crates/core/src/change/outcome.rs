//! What a change did, or will have done once its patch applies: the outcome printed and logged,
//! and the Event that tells of it.

use json_patch::Patch;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::ChangeRequest;
use crate::labels;
use crate::pass::Pass;
use crate::patch;
use crate::record::{self, ChangeKind, HistoryEntry};
use crate::stage::{Pipeline, Stage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeResult {
    Applied,
    Noop,
    /// Nothing written: the caller's pass is over, a wait of it sent the play back (or failed
    /// it at the pass limit). The play template starts the next pass on this answer.
    #[serde(rename = "pass-over")]
    PassOver,
}

/// What a change did; printed to stdout and logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOutcome {
    pub workflow: String,
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    pub outcome: ChangeResult,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    /// For a waiting stage: whether its wait is already satisfied by an early event, so the
    /// template can skip the wait step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_wait: Option<bool>,
    /// The pass the play is in afterwards.
    pub pass: u32,
    /// For a play that is (now) failed: why, as its change into `failed` records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<record::Failure>,
    /// For a step whose pass is over: not before this time may it return and let the
    /// template start the next pass (the pass's first whole second, [`Pass::first_second`]).
    #[serde(skip)]
    pub hold_until: Option<jiff::Timestamp>,
}

/// A change that will have happened once its patch applies (or that already holds): the
/// outcome to report, and the history entry the patch writes (none for a no-op).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub outcome: ChangeOutcome,
    pub entry: Option<HistoryEntry>,
}

impl ChangeRequest {
    /// The outcome of a change that leaves the stage where it is.
    pub(super) fn unchanged(&self, current: &Stage, skip_wait: Option<bool>, pass: u32) -> Planned {
        Planned {
            outcome: ChangeOutcome {
                workflow: self.workflow.to_string(),
                namespace: self.namespace.clone(),
                from: None,
                to: current.name().to_string(),
                outcome: ChangeResult::Noop,
                forced: false,
                skip_wait,
                pass,
                failure: None,
                hold_until: None,
            },
            entry: None,
        }
    }

    /// The answer of a step whose pass is over: the play is in pass `now_in`.
    pub(super) fn pass_over(&self, current: &Stage, now_in: &Pass) -> Planned {
        let mut planned = self.unchanged(current, Some(true), now_in.number);
        planned.outcome.outcome = ChangeResult::PassOver;
        planned.outcome.hold_until = now_in.first_second();
        planned
    }

    /// The outcome of the change that `entry` records, once applied. A change that a latched
    /// event sent back skips the wait it did not enter.
    pub(super) fn applied(&self, pipeline: &Pipeline, entry: &HistoryEntry) -> ChangeOutcome {
        let to = pipeline.stage(&entry.to);
        let skip_wait = if entry.kind == ChangeKind::SentBack {
            Some(true)
        } else {
            pipeline
                .is_waiting(&to)
                .then_some(entry.wait_satisfied_by.is_some())
        };
        ChangeOutcome {
            workflow: self.workflow.to_string(),
            namespace: self.namespace.clone(),
            from: Some(entry.from.clone()),
            to: entry.to.clone(),
            outcome: ChangeResult::Applied,
            forced: entry.kind == ChangeKind::Forced,
            skip_wait,
            pass: entry.pass,
            failure: to.is_failed().then(|| record::Failure::of(entry)),
            hold_until: None,
        }
    }
}

impl Planned {
    /// What the server returned for an applied change must show the new stage; anything else
    /// means something between stagectl and etcd rewrote it.
    pub fn confirm(&self, committed: &ObjectMeta) -> Result<(), String> {
        let stage = committed
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::CURRENT_STAGE));
        if stage == Some(&self.outcome.to) {
            Ok(())
        } else {
            Err(format!(
                "the API server accepted the change of {} but returned stage {stage:?}; check for a mutating webhook",
                self.outcome.workflow
            ))
        }
    }

    /// The Event that tells of an applied change: its reason, and its note.
    pub fn event(&self) -> Option<(&'static str, String)> {
        let entry = self.entry.as_ref()?;
        let verb = match entry.kind {
            ChangeKind::Rollback => "rolled back",
            ChangeKind::Forced => "forced",
            ChangeKind::Set => "moved",
            ChangeKind::SentBack => "sent back",
        };
        let mut note = format!("stage {verb} from {} to {}", entry.from, entry.to);
        if let Some(reason) = &entry.reason {
            note.push_str(": ");
            note.push_str(reason);
        }
        if let Some(delivery) = &entry.wait_satisfied_by {
            note.push_str(&format!(
                "; its wait was satisfied early by {}",
                delivery.describe()
            ));
        }
        let reason = match entry.kind {
            ChangeKind::Rollback => "StageRolledBack",
            ChangeKind::SentBack => "PlaySentBack",
            _ => "StageChanged",
        };
        Some((reason, note))
    }
}

/// The patch that trims a workflow's history to its newest entries, when it has more.
pub fn history_trim(committed: &ObjectMeta) -> Option<Patch> {
    let overflow = record::history_overflow(committed);
    let annotations = committed.annotations.as_ref()?;
    let seen: Vec<(String, String)> = overflow
        .iter()
        .filter_map(|key| Some((key.clone(), annotations.get(key)?.clone())))
        .collect();
    (!seen.is_empty()).then(|| patch::remove_annotations(&seen))
}
