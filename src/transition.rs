//! Applies a stage change as a compare-and-swap, shared by `set` and `rollback`.
//!
//! The hot path is one PATCH: when the step is a normal move forward, the stage the workflow must
//! be at is known without reading it, so the patch tests it and writes the new stage, `updated-at`
//! and the history entry at once; the object the server returns confirms the change. Only when the
//! server refuses the patch (422) does stagectl read the workflow, to tell a repeat (no-op) from a
//! refusal, or to patch again from what it read.
//!
//! Entering a waiting stage also tests that stage's latch (see `latch`): empty, the change goes
//! through as above; holding an early event, the patch built from the read clears the latch and
//! records that the wait was satisfied early, in the same compare-and-swap.

use jiff::Timestamp;
use serde::Serialize;
use tracing::{debug, info};

use crate::cluster::{Cluster, Target, WorkflowMeta, is_patch_refused};
use crate::error::{Error, Result};
use crate::labels::{self, Repository};
use crate::latch::{self, LatchSlot};
use crate::patch::{self, StageChange};
use crate::record::{self, ChangeKind, HistoryEntry, StageRecord};
use crate::stage::{Pipeline, Transition};

/// The workflow a change is for, and what it must be to accept it.
#[derive(Debug, Clone)]
pub struct Subject {
    pub namespace: String,
    pub name: String,
    pub task_id: Option<String>,
    pub repository: Option<Repository>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeResult {
    Applied,
    Noop,
}

/// What a change did; printed to stdout and logged.
#[derive(Debug, Clone, Serialize)]
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
}

/// How a change is asked for.
pub struct Request<'a> {
    pub subject: &'a Subject,
    pub pipeline: &'a Pipeline,
    pub kind: ChangeKind,
    pub reason: Option<String>,
    /// Where a change goes when the caller knows it upfront (set); a rollback learns it from
    /// the history, and names it here only for messages.
    pub target: &'a str,
    /// The stage the workflow is expected at without reading it, when the caller knows it.
    pub expected_from: Option<&'a str>,
}

/// A GET answers what a refused patch could not: the workflow's actual state. More rounds than
/// this means the workflow keeps changing under us.
const MAX_ROUNDS: usize = 4;

pub async fn apply(
    cluster: &Cluster,
    request: &Request<'_>,
    decide: impl Fn(&StageRecord) -> Transition,
) -> Result<ChangeOutcome> {
    let subject = request.subject;
    let target = Target::workflow(&subject.namespace, &subject.name);
    // (from, to, what was read): the hot path starts with what the caller knows, unread.
    let mut plan: Option<(String, String, Option<WorkflowMeta>)> = request
        .expected_from
        .map(|from| (from.to_string(), request.target.to_string(), None));
    for _ in 0..MAX_ROUNDS {
        let (from, to, observed) = match plan.take() {
            Some(plan) => plan,
            None => {
                let observed = cluster.get_meta(&subject.namespace, &subject.name).await?;
                let record = StageRecord::from_meta(&observed.metadata);
                check_identity(subject, &record)?;
                match decide(&record) {
                    Transition::Noop => {
                        let stage = record.stage.unwrap_or_else(|| request.target.to_string());
                        let skip_wait = request
                            .pipeline
                            .is_waiting(&stage)
                            .then(|| latch::satisfied_early(&observed.metadata, &stage).is_some());
                        return Ok(ChangeOutcome {
                            workflow: subject.name.clone(),
                            namespace: subject.namespace.clone(),
                            from: None,
                            to: stage,
                            outcome: ChangeResult::Noop,
                            forced: false,
                            skip_wait,
                        });
                    }
                    Transition::Refuse(why) => {
                        return Err(Error::Refused(format!("workflow {}: {why}", subject.name)));
                    }
                    Transition::Apply { from, to, forced } => {
                        debug!(from = %from, to = %to, forced, "patching from what was read");
                        (from, to, Some(observed))
                    }
                }
            }
        };
        let (change, entry) = build_change(request, &from, &to, observed.as_ref());
        match cluster
            .patch_meta(&subject.namespace, &subject.name, &change.to_patch())
            .await
        {
            Ok(committed) => {
                let stage = committed
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(labels::CURRENT_STAGE));
                if stage != Some(&to) {
                    return Err(Error::Other(anyhow::anyhow!(
                        "the API server accepted the change of {} but returned stage {:?}; check for a mutating webhook",
                        subject.name,
                        stage
                    )));
                }
                after_change(cluster, &committed, &entry).await;
                return Ok(ChangeOutcome {
                    workflow: subject.name.clone(),
                    namespace: subject.namespace.clone(),
                    from: Some(from),
                    to: to.clone(),
                    outcome: ChangeResult::Applied,
                    forced: request.kind == ChangeKind::Forced,
                    skip_wait: request
                        .pipeline
                        .is_waiting(&to)
                        .then_some(entry.wait_satisfied_by.is_some()),
                });
            }
            Err(err) if is_patch_refused(&err) => {
                debug!(from = %from, error = %crate::cluster::describe(&err), "patch refused; reading the workflow");
            }
            Err(err) => return Err(cluster.classify(err, &target, "patch")),
        }
    }
    Err(Error::GaveUp(format!(
        "workflow {} kept changing while stagectl tried to move it to {}; run the command again",
        subject.name, request.target
    )))
}

/// A workflow of another task or repository is never changed on this one's behalf.
fn check_identity(subject: &Subject, record: &StageRecord) -> Result<()> {
    if let (Some(wanted), Some(actual)) = (&subject.task_id, &record.task_id)
        && wanted != actual
    {
        return Err(Error::Refused(format!(
            "workflow {} is the play of task {actual}, not {wanted}; check --task-id and --workflow",
            subject.name
        )));
    }
    if let Some(wanted) = &subject.repository {
        let actual = record.repository.as_deref().map(|r| r.to_ascii_lowercase());
        if let Some(actual) = actual
            && actual != wanted.full_name().to_ascii_lowercase()
        {
            return Err(Error::Refused(format!(
                "workflow {} belongs to repository {actual}, not {}; check --repository and --workflow",
                subject.name,
                wanted.full_name()
            )));
        }
    }
    Ok(())
}

/// The patch for `from` → `to`, and the history entry it writes.
fn build_change(
    request: &Request<'_>,
    from: &str,
    to: &str,
    observed: Option<&WorkflowMeta>,
) -> (StageChange, HistoryEntry) {
    let subject = request.subject;
    let mut entry = HistoryEntry {
        at: Timestamp::now(),
        from: from.to_string(),
        to: to.to_string(),
        kind: request.kind,
        by: record::actor(),
        reason: request.reason.clone(),
        wait_satisfied_by: None,
    };
    let pipeline = request.pipeline;
    // Entering a waiting stage: its latch, as read (`None` inside when unread).
    let entered_latch = (request.kind != ChangeKind::Rollback && pipeline.is_waiting(to))
        .then(|| observed.map(|o| latch::latch_slot(&o.metadata, to)));
    if let Some(Some(LatchSlot::Latched(delivery, _))) = &entered_latch {
        entry.wait_satisfied_by = Some(delivery.clone());
    }
    let mut change = StageChange::new(from, to, &entry);
    let mut needs_resource_version = false;
    let labels_seen = observed.and_then(|o| o.metadata.labels.as_ref());
    let mut identity = Vec::new();
    if let Some(task_id) = &subject.task_id {
        identity.push((labels::TASK_ID.to_string(), task_id.clone()));
    }
    if let Some(repository) = &subject.repository {
        identity.push((labels::REPOSITORY.to_string(), repository.label_value()));
    }
    for (key, value) in identity {
        match labels_seen {
            // Known to be absent: written, under a resourceVersion test.
            Some(seen) if !seen.contains_key(&key) => {
                needs_resource_version = true;
                if key == labels::REPOSITORY
                    && let Some(repository) = &subject.repository
                {
                    change.set_annotations.push((
                        labels::REPOSITORY_ANNOTATION.to_string(),
                        repository.full_name().to_string(),
                    ));
                }
                change.set_labels.push((key, value));
            }
            _ => change.expect_labels.push((key, value)),
        }
    }

    if let Some(slot) = entered_latch {
        let key = latch::latch_key(to);
        match slot {
            // Unread: assume the empty latch; a latch written meanwhile fails the test.
            None | Some(LatchSlot::Empty) => change.expect_annotations.push((key, String::new())),
            // Honoured: cleared in the same patch; the history entry names the delivery.
            Some(LatchSlot::Latched(_, text)) => {
                change.expect_annotations.push((key.clone(), text));
                change.set_annotations.push((key, String::new()));
            }
            // No latch annotation to test: only the whole object as read is safe.
            Some(LatchSlot::Missing) => needs_resource_version = true,
        }
    }
    if let Some(observed) = observed {
        // Going back: early events latched for the stages left behind were honoured (or are
        // stale) and must not release the waits again on the way forward.
        if to != crate::stage::FAILED
            && (pipeline.is_before(to, from) || from == crate::stage::FAILED)
        {
            for stage in pipeline
                .stages()
                .iter()
                .filter(|s| pipeline.is_before(to, s))
            {
                if let LatchSlot::Latched(_, text) = latch::latch_slot(&observed.metadata, stage) {
                    change
                        .expect_annotations
                        .push((latch::latch_key(stage), text));
                    change
                        .set_annotations
                        .push((latch::latch_key(stage), String::new()));
                }
            }
        }
        change.create_annotations_map = observed.metadata.annotations.is_none();
        if change.create_annotations_map || needs_resource_version {
            change.resource_version = observed.metadata.resource_version.clone();
        }
    }
    (change, entry)
}

/// Book-keeping after a change has landed: trim the history, record an Event. Neither is worth
/// failing a change that already happened, so both only log on failure.
async fn after_change(cluster: &Cluster, committed: &WorkflowMeta, entry: &HistoryEntry) {
    let overflow = record::history_overflow(&committed.metadata);
    let namespace = committed
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(&cluster.namespace);
    if !overflow.is_empty() {
        let annotations = committed
            .metadata
            .annotations
            .as_ref()
            .expect("history is in annotations");
        let seen: Vec<(String, String)> = overflow
            .iter()
            .map(|k| (k.clone(), annotations[k].clone()))
            .collect();
        let name = committed.metadata.name.as_deref().unwrap_or_default();
        match cluster
            .patch_meta(namespace, name, &patch::remove_annotations(&seen))
            .await
        {
            Ok(_) => debug!(removed = seen.len(), "history trimmed"),
            Err(err) => {
                info!(error = %crate::cluster::describe(&err), "history not trimmed this time; the next change tries again")
            }
        }
    }
    let verb = match entry.kind {
        ChangeKind::Rollback => "rolled back",
        ChangeKind::Forced => "forced",
        ChangeKind::Set => "moved",
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
        _ => "StageChanged",
    };
    cluster
        .record_event(&committed.metadata, reason, "ChangeStage", &note)
        .await;
}
