//! A Workflow's stage record as stagectl reads it from labels and annotations: the current
//! stage, task, repository and the history of changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::delivery::Delivery;
use crate::labels::{self, Repository};
use crate::stage::{FAILED, Pipeline, Stage};

/// Each change is one annotation of its own, `stagectl.dev/history-<unix nanoseconds>`, so that
/// a change can add its entry in the same JSON Patch without reading the others first.
pub(crate) const HISTORY_PREFIX: &str = "stagectl.dev/history-";
/// How many entries a Workflow keeps; older ones are trimmed after a change.
pub(crate) const HISTORY_LIMIT: usize = 20;
/// Reasons longer than this are cut, so that the history stays small whatever callers pass.
pub(crate) const REASON_LIMIT: usize = 512;
/// The stage a play failed at, written with every move into `failed`: where `rollback` returns
/// it to, read by the API server's policy as well as by stagectl.
pub(crate) const FAILED_AT_ANNOTATION: &str = "stagectl.dev/failed-at";

/// Whether the controller has finished the workflow (Succeeded, Failed or Error): its own
/// label says so, with the same write that sets the phase.
pub(crate) fn has_ended(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|labels| labels.get(labels::ARGO_COMPLETED))
        .is_some_and(|value| value == "true")
}

/// A workflow's stage label read against `pipeline`, without reading the rest of its record.
pub(crate) fn current_stage(meta: &ObjectMeta, pipeline: &Pipeline) -> Option<Stage> {
    let name = meta.labels.as_ref()?.get(labels::CURRENT_STAGE)?;
    (!name.is_empty()).then(|| pipeline.stage(name))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// A step forward, or into `failed`.
    Set,
    /// `set --force`: a move the stage order does not allow.
    Forced,
    /// A return to an earlier stage.
    Rollback,
    /// A wait's event sent the play back to an earlier stage, for its next pass.
    SentBack,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub from: String,
    pub to: String,
    pub kind: ChangeKind,
    /// Who made the change: the pod (in a workflow step) or user@host.
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The early event this change honoured: the wait of `to` was over before it began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_satisfied_by: Option<Delivery>,
    /// The pass the play is in after the change (entries written before passes existed read
    /// as the first).
    #[serde(default = "first_pass")]
    pub pass: u32,
}

fn first_pass() -> u32 {
    1
}

/// Why a play failed, as its change into `failed` records it: for the exit handler's metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// A wait's event sent it back in the last pass its pipeline allows.
    PassLimit,
    /// A wait's event failed it there (its `failedBy`).
    FailingEvent,
    /// A step failed, or someone set it failed.
    Step,
}

impl Failure {
    /// Why the change `entry` (into `failed`) failed the play.
    pub fn of(entry: &HistoryEntry) -> Self {
        match entry.wait_satisfied_by.as_ref().map(|d| d.verdict) {
            Some(crate::event::Verdict::SendsBack) => Self::PassLimit,
            Some(crate::event::Verdict::Fails) => Self::FailingEvent,
            _ => Self::Step,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PassLimit => "pass-limit",
            Self::FailingEvent => "failing-event",
            Self::Step => "step",
        }
    }
}

impl HistoryEntry {
    pub(crate) fn annotation_key(&self) -> String {
        format!("{HISTORY_PREFIX}{}", self.at.as_nanosecond())
    }
}

/// Cuts a reason to [`REASON_LIMIT`] characters and replaces control characters, which have no
/// place in one log line or one table cell.
pub fn clean_reason(reason: &str) -> String {
    reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(REASON_LIMIT)
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageRecord {
    pub name: String,
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The stage label read against the pipeline; `None` when the workflow has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// The Argo controller's phase (Running, Succeeded, ...), from its own label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Whether the controller has finished the workflow ([`has_ended`]).
    #[serde(skip)]
    pub ended: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// For a failed play, the stage it failed at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<Stage>,
    pub history: Vec<HistoryEntry>,
    /// The pass the play is in (1 for a play never sent back, or whose pass does not read).
    pub pass: u32,
    /// When that pass began, for a later pass than the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_began: Option<Timestamp>,
    /// The pipeline its stages were read against: the one the play carries, else the caller's.
    #[serde(skip)]
    pub pipeline: Arc<Pipeline>,
}

impl StageRecord {
    /// Reads a workflow's labels and annotations; stages are read against `pipeline` (the play's
    /// own, [`crate::pipeline::Pipelines`]) once, here.
    pub fn from_meta(meta: &ObjectMeta, pipeline: Arc<Pipeline>) -> Self {
        let empty = BTreeMap::new();
        let labels = meta.labels.as_ref().unwrap_or(&empty);
        let annotations = meta.annotations.as_ref().unwrap_or(&empty);
        let label = |key: &str| labels.get(key).filter(|v| !v.is_empty()).cloned();
        let repository = annotations
            .get(labels::REPOSITORY_ANNOTATION)
            .cloned()
            .or_else(|| {
                label(labels::REPOSITORY).map(|v| Repository::decode_label(&v).unwrap_or(v))
            });
        let history: Vec<HistoryEntry> = history(meta).into_values().collect();
        let pass = crate::pass::Pass::of(meta).unwrap_or_default();
        let stage = current_stage(meta, &pipeline);
        // A failed play's stage before: its annotation, or for a play that failed before stagectl
        // wrote one, its last move into `failed` (which the API server's policy, reading only the
        // annotation, does not know).
        let failed_at = stage
            .as_ref()
            .is_some_and(Stage::is_failed)
            .then(|| {
                annotations
                    .get(FAILED_AT_ANNOTATION)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .or_else(|| {
                        let last = history.iter().rev().find(|e| e.to == FAILED)?;
                        Some(last.from.clone())
                    })
            })
            .flatten()
            .map(|name| pipeline.stage(&name));
        Self {
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            task_id: label(labels::TASK_ID),
            repository,
            stage,
            updated_at: label(labels::UPDATED_AT)
                .and_then(|secs| secs.parse::<i64>().ok())
                .and_then(|secs| Timestamp::from_second(secs).ok()),
            phase: label(labels::ARGO_PHASE),
            ended: has_ended(meta),
            created_at: meta.creation_timestamp.as_ref().map(|t| t.0),
            failed_at,
            history,
            pass: pass.number,
            pass_began: pass.began,
            pipeline,
        }
    }

    /// Since when the play waits: it is at a waiting stage and has not ended, and this is when
    /// it entered the stage (its last change into it; else the time of its stage label).
    pub fn waiting_since(&self) -> Option<Timestamp> {
        let stage = self.stage.as_ref()?;
        if self.ended || !self.pipeline.is_waiting(stage) {
            return None;
        }
        self.history
            .iter()
            .rev()
            .find(|entry| entry.to == stage.name())
            .map(|entry| entry.at)
            .or(self.updated_at)
            .or(self.created_at)
    }
}

/// History entries by annotation key, oldest first (the key holds the time in nanoseconds, and
/// every key has the same number of digits for centuries to come). Entries that do not parse
/// are left out rather than failing a read.
pub fn history(meta: &ObjectMeta) -> BTreeMap<String, HistoryEntry> {
    meta.annotations
        .iter()
        .flatten()
        .filter(|(key, _)| key.starts_with(HISTORY_PREFIX))
        .filter_map(|(key, value)| Some((key.clone(), serde_json::from_str(value).ok()?)))
        .collect()
}

/// The history annotations beyond the newest [`HISTORY_LIMIT`], to be removed.
pub(crate) fn history_overflow(meta: &ObjectMeta) -> Vec<String> {
    let keys: Vec<&String> = meta
        .annotations
        .iter()
        .flatten()
        .map(|(key, _)| key)
        .filter(|key| key.starts_with(HISTORY_PREFIX))
        .collect();
    let excess = keys.len().saturating_sub(HISTORY_LIMIT);
    keys.into_iter().take(excess).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::{Meta, entry};

    fn meta_with(entries: &[HistoryEntry], labels: &[(&str, &str)]) -> ObjectMeta {
        Meta::named("play-1")
            .namespace("ns")
            .labels(labels)
            .history(entries)
            .annotations(&[("unrelated".into(), "x".into())])
            .build()
    }

    #[test]
    fn record_reads_labels_annotations_and_ordered_history() {
        let entries = [
            entry(1_790_000_000_000_000_000, "pending", "waiting-pr-created"),
            entry(1_790_000_100_000_000_000, "waiting-pr-created", "failed"),
        ];
        let meta = meta_with(
            &[entries[1].clone(), entries[0].clone()],
            &[
                ("current-stage", "failed"),
                ("task-id", "42"),
                ("repository", "acme.widgets"),
                ("updated-at", "1790000100"),
                ("workflows.argoproj.io/phase", "Failed"),
            ],
        );
        let record = StageRecord::from_meta(&meta, Arc::new(Pipeline::default()));
        assert_eq!(record.stage.as_ref().map(Stage::name), Some("failed"));
        assert_eq!(record.task_id.as_deref(), Some("42"));
        assert_eq!(record.repository.as_deref(), Some("acme/widgets"));
        assert_eq!(record.phase.as_deref(), Some("Failed"));
        assert_eq!(
            record.updated_at,
            Some(Timestamp::from_second(1_790_000_100).unwrap())
        );
        assert_eq!(record.history, entries);
        assert_eq!(
            record.failed_at.as_ref().map(Stage::name),
            Some("waiting-pr-created")
        );
    }

    #[test]
    fn history_keeps_the_newest_entries() {
        let entries: Vec<_> = (0..HISTORY_LIMIT as i128 + 3)
            .map(|i| entry(1_790_000_000_000_000_000 + i * 1_000, "a", "b"))
            .collect();
        let meta = meta_with(&entries, &[]);
        let overflow = history_overflow(&meta);
        let expected: Vec<_> = entries[..3]
            .iter()
            .map(HistoryEntry::annotation_key)
            .collect();
        assert_eq!(overflow, expected);
    }

    #[test]
    fn reasons_are_bounded_single_lines() {
        assert_eq!(clean_reason("agent\nfailed\t!"), "agent failed !");
        assert_eq!(
            clean_reason(&"x".repeat(10_000)).chars().count(),
            REASON_LIMIT
        );
    }

    #[test]
    fn a_play_waits_from_its_last_change_into_a_waiting_stage_until_it_ends() {
        let pipeline = Pipeline::default();
        let at = |secs| Timestamp::from_second(secs).unwrap();
        let mut record = StageRecord {
            name: "play".into(),
            namespace: "argo".into(),
            task_id: Some("1".into()),
            repository: None,
            stage: Some(pipeline.stage("waiting-ready-for-qa")),
            updated_at: Some(at(500)),
            phase: Some("Running".into()),
            ended: false,
            created_at: Some(at(10)),
            failed_at: None,
            pass: 1,
            pass_began: None,
            pipeline: Arc::new(pipeline.clone()),
            history: vec![
                entry(100_000_000_000, "pending", "waiting-pr-created"),
                entry(
                    200_000_000_000,
                    "waiting-pr-created",
                    "waiting-ready-for-qa",
                ),
            ],
        };
        assert_eq!(record.waiting_since(), Some(at(200)));
        record.history.clear();
        assert_eq!(record.waiting_since(), Some(at(500)));
        record.ended = true;
        assert_eq!(record.waiting_since(), None);
        record.ended = false;
        record.stage = Some(pipeline.stage("pending"));
        assert_eq!(record.waiting_since(), None);
    }
}
