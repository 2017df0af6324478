//! JSON Patches for stage changes. A change is a compare-and-swap: `test` operations check what
//! the change assumes, and the same request writes the new state, so it lands entirely or not at
//! all, and never on a workflow that moved in between.

use json_patch::jsonptr::PointerBuf;
use json_patch::{
    AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation, TestOperation,
};
use serde_json::{Map, Value};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::labels;
use crate::latch::{self, Delivery, LatchSlot};
use crate::record::{FAILED_AT_ANNOTATION, HistoryEntry};
use crate::stage::{FAILED, Stage};

/// Everything one stage change writes, and what it must find to write it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StageChange {
    /// The stage the workflow must still be at.
    pub from: String,
    pub to: String,
    /// Labels that must hold exactly these values (the task id and repository a caller named).
    pub expect_labels: Vec<(String, String)>,
    /// Annotations that must hold exactly these values (a stage's latch, empty or not).
    pub expect_annotations: Vec<(String, String)>,
    /// Labels written beside the stage (`updated-at`, and identity labels a workflow lacked).
    pub set_labels: Vec<(String, String)>,
    /// Annotations written: the history entry, and the full repository name when set.
    pub set_annotations: Vec<(String, String)>,
    /// Set when the patch is built from a read of the workflow: the whole object must be as read,
    /// which also makes it safe to create a missing annotations map.
    pub resource_version: Option<String>,
    /// The workflow has no annotations map yet (`add` into a missing map fails).
    pub create_annotations_map: bool,
}

impl StageChange {
    /// A change into `failed` records the stage it leaves, where a rollback returns it (the
    /// stage-machine policy admits no move into `failed` without it).
    pub fn new(from: &str, to: &str, entry: &HistoryEntry) -> Self {
        let mut change = Self {
            from: from.to_string(),
            to: to.to_string(),
            expect_labels: Vec::new(),
            expect_annotations: Vec::new(),
            set_labels: vec![(
                labels::UPDATED_AT.to_string(),
                entry.at.as_second().to_string(),
            )],
            set_annotations: vec![(
                entry.annotation_key(),
                // Unreachable: a history entry is strings, a timestamp and enums, no map.
                serde_json::to_string(entry).expect("history entry serializes"),
            )],
            resource_version: None,
            create_annotations_map: false,
        };
        if to == FAILED {
            change
                .set_annotations
                .push((FAILED_AT_ANNOTATION.to_string(), from.to_string()));
        }
        change
    }

    /// Makes the play's pass part of the compare-and-swap, where the play has the annotation
    /// (a play without it is in its first pass, and a change of it is tested otherwise).
    pub(crate) fn test_pass(&mut self, pass: crate::pass::Pass) {
        if pass.annotated {
            self.expect_annotations.push((
                crate::pass::PASS_ANNOTATION.to_string(),
                pass.number.to_string(),
            ));
        }
    }

    pub(crate) fn to_patch(&self) -> Patch {
        let mut ops = Vec::new();
        if let Some(version) = &self.resource_version {
            ops.push(test(&["metadata", "resourceVersion"], version.as_str()));
        }
        ops.push(test(
            &["metadata", "labels", labels::CURRENT_STAGE],
            self.from.as_str(),
        ));
        for (key, value) in &self.expect_labels {
            ops.push(test(&["metadata", "labels", key], value.as_str()));
        }
        for (key, value) in &self.expect_annotations {
            ops.push(test(&["metadata", "annotations", key], value.as_str()));
        }
        ops.push(replace(
            &["metadata", "labels", labels::CURRENT_STAGE],
            self.to.as_str(),
        ));
        for (key, value) in &self.set_labels {
            ops.push(add(&["metadata", "labels", key], value.as_str()));
        }
        if self.create_annotations_map {
            let map: Map<String, Value> = self
                .set_annotations
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            ops.push(add(&["metadata", "annotations"], Value::Object(map)));
        } else {
            for (key, value) in &self.set_annotations {
                ops.push(add(&["metadata", "annotations", key], value.as_str()));
            }
        }
        Patch(ops)
    }
}

/// What the play template's `workflowMetadata` gives a play, written by stagectl when Argo's
/// controller did not apply it: labels and annotations each `add`ed (into a new map where the
/// workflow has none), under a test of the whole object as read, so that nothing written
/// meanwhile — the controller's own metadata, another start step — is overwritten.
pub(crate) fn initialise(
    observed: &ObjectMeta,
    labels: &[(String, String)],
    annotations: &[(String, String)],
) -> Patch {
    let mut ops = Vec::new();
    if let Some(version) = &observed.resource_version {
        ops.push(test(&["metadata", "resourceVersion"], version.as_str()));
    }
    for (field, entries, present) in [
        ("labels", labels, observed.labels.is_some()),
        ("annotations", annotations, observed.annotations.is_some()),
    ] {
        if present {
            for (key, value) in entries {
                ops.push(add(&["metadata", field, key], value.as_str()));
            }
        } else {
            let map: Map<String, Value> = entries
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            ops.push(add(&["metadata", field], Value::Object(map)));
        }
    }
    Patch(ops)
}

/// Annotations `add`ed to a workflow still at `stage` (the play's definition, recorded by its
/// first step). Their values are the same whoever writes them, and the API server's policy
/// refuses any other once they are set, so only the stage is tested, not the whole object:
/// the controller's status writes at a play's start do not make this patch fail. A workflow
/// with no annotations at all gets the map under a test of the whole object, as in
/// [`initialise`].
pub(crate) fn add_annotations_at(
    observed: &ObjectMeta,
    stage: &str,
    annotations: &[(String, String)],
) -> Patch {
    if observed.annotations.is_none() {
        return initialise(observed, &[], annotations);
    }
    let mut ops = vec![test(&["metadata", "labels", labels::CURRENT_STAGE], stage)];
    ops.extend(
        annotations
            .iter()
            .map(|(key, value)| add(&["metadata", "annotations", key], value.as_str())),
    );
    Patch(ops)
}

/// Removes annotations that were seen on the workflow; used to trim the history. Each `test`
/// keeps a concurrent trim from turning into an error for the other side.
pub(crate) fn remove_annotations(seen: &[(String, String)]) -> Patch {
    let mut ops = Vec::new();
    for (key, value) in seen {
        ops.push(test(&["metadata", "annotations", key], value.as_str()));
        ops.push(remove(&["metadata", "annotations", key]));
    }
    Patch(ops)
}

/// Latching an early event: a compare-and-swap on the stage and pass the play is at (so that a
/// latch never lands in a later pass that passes the same stage) and, where the play was
/// created with it, on the empty latch.
pub(crate) fn latch_event(
    meta: &ObjectMeta,
    stage: &Stage,
    (from, pass): (&Stage, crate::pass::Pass),
    slot: &LatchSlot,
    delivery: &Delivery,
) -> Patch {
    let key = latch::latch_key(stage.name());
    let mut ops = vec![test(
        &["metadata", "labels", labels::CURRENT_STAGE],
        from.name(),
    )];
    if pass.annotated {
        ops.push(test(
            &["metadata", "annotations", crate::pass::PASS_ANNOTATION],
            pass.number.to_string(),
        ));
    }
    match slot {
        LatchSlot::Empty => {
            ops.push(test(&["metadata", "annotations", &key], ""));
            ops.push(replace(
                &["metadata", "annotations", &key],
                delivery.to_annotation(),
            ));
        }
        // No empty latch to test: the stage test alone guards the write.
        _ => ops.extend(record_delivery(meta, &key, delivery)),
    }
    Patch(ops)
}

/// Writes one annotation holding `delivery`. Into an existing map, `add` is enough (it creates or
/// replaces the key, and the other tests of the patch guard it); without a map, the map is
/// created, under a test of the resourceVersion so that nothing another writer added is lost.
pub(crate) fn record_delivery(
    meta: &ObjectMeta,
    key: &str,
    delivery: &Delivery,
) -> Vec<PatchOperation> {
    match &meta.annotations {
        Some(_) => vec![add(
            &["metadata", "annotations", key],
            delivery.to_annotation(),
        )],
        None => vec![
            test(
                &["metadata", "resourceVersion"],
                meta.resource_version.clone().unwrap_or_default(),
            ),
            add(
                &["metadata", "annotations"],
                serde_json::json!({ key: delivery.to_annotation() }),
            ),
        ],
    }
}

/// A JSON Pointer from unescaped tokens: `/` in a label key becomes `~1`, `~` becomes `~0`.
fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

pub fn test(tokens: &[&str], value: impl Into<Value>) -> PatchOperation {
    PatchOperation::Test(TestOperation {
        path: pointer(tokens),
        value: value.into(),
    })
}

pub fn add(tokens: &[&str], value: impl Into<Value>) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: pointer(tokens),
        value: value.into(),
    })
}

pub fn replace(tokens: &[&str], value: impl Into<Value>) -> PatchOperation {
    PatchOperation::Replace(ReplaceOperation {
        path: pointer(tokens),
        value: value.into(),
    })
}

pub fn remove(tokens: &[&str]) -> PatchOperation {
    PatchOperation::Remove(RemoveOperation {
        path: pointer(tokens),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ChangeKind;
    use jiff::Timestamp;
    use serde_json::json;

    fn entry() -> HistoryEntry {
        HistoryEntry {
            at: Timestamp::from_nanosecond(1_790_000_000_123_456_789).unwrap(),
            from: "pending".into(),
            to: "waiting-pr-created".into(),
            kind: ChangeKind::Set,
            by: "pod/rex".into(),
            reason: None,
            wait_satisfied_by: None,
            pass: 1,
        }
    }

    #[test]
    fn hot_path_patch_tests_the_stage_and_writes_in_one_request() {
        let change = StageChange::new("pending", "waiting-pr-created", &entry());
        let patch = serde_json::to_value(change.to_patch()).unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/labels/current-stage", "value": "pending"},
                {"op": "replace", "path": "/metadata/labels/current-stage", "value": "waiting-pr-created"},
                {"op": "add", "path": "/metadata/labels/updated-at", "value": "1790000000"},
                {"op": "add", "path": "/metadata/annotations/stagectl.dev~1history-1790000000123456789",
                 "value": serde_json::to_string(&entry()).unwrap()},
            ])
        );
    }

    #[test]
    fn patch_applies_to_a_matching_workflow_and_refuses_a_moved_one() {
        let workflow = json!({"metadata": {
            "labels": {"current-stage": "pending", "task-id": "42", "workflows.argoproj.io/phase": "Running"},
            "annotations": {"other": "kept"},
        }});
        let mut change = StageChange::new("pending", "waiting-pr-created", &entry());
        change.expect_labels.push(("task-id".into(), "42".into()));

        let mut applied = workflow.clone();
        json_patch::patch(&mut applied, &change.to_patch()).unwrap();
        assert_eq!(
            applied["metadata"]["labels"]["current-stage"],
            "waiting-pr-created"
        );
        assert_eq!(
            applied["metadata"]["labels"]["workflows.argoproj.io/phase"],
            "Running"
        );
        assert_eq!(applied["metadata"]["annotations"]["other"], "kept");

        let mut moved = workflow.clone();
        moved["metadata"]["labels"]["current-stage"] = json!("failed");
        assert!(json_patch::patch(&mut moved.clone(), &change.to_patch()).is_err());

        let mut other_task = workflow;
        other_task["metadata"]["labels"]["task-id"] = json!("7");
        assert!(json_patch::patch(&mut other_task, &change.to_patch()).is_err());
    }

    #[test]
    fn missing_annotations_map_is_created_only_under_a_resource_version_test() {
        let mut change = StageChange::new("pending", "waiting-pr-created", &entry());
        change.create_annotations_map = true;
        change.resource_version = Some("17".into());
        let mut workflow =
            json!({"metadata": {"resourceVersion": "17", "labels": {"current-stage": "pending"}}});
        json_patch::patch(&mut workflow, &change.to_patch()).unwrap();
        assert!(workflow["metadata"]["annotations"][entry().annotation_key()].is_string());

        let mut changed =
            json!({"metadata": {"resourceVersion": "18", "labels": {"current-stage": "pending"}}});
        assert!(json_patch::patch(&mut changed, &change.to_patch()).is_err());
    }

    #[test]
    fn patches_never_touch_argo_controller_labels() {
        let mut change = StageChange::new("a", "b", &entry());
        change.expect_labels.push(("task-id".into(), "1".into()));
        let text = serde_json::to_string(&change.to_patch()).unwrap();
        assert!(!text.contains("workflows.argoproj.io"));
    }
}
