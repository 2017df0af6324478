//! JSON Patches for stage changes. A change is a compare-and-swap: `test` operations check what
//! the change assumes, and the same request writes the new state, so it lands entirely or not at
//! all, and never on a workflow that moved in between.

use json_patch::jsonptr::PointerBuf;
use json_patch::{
    AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation, TestOperation,
};
use serde_json::{Map, Value};

use crate::labels;
use crate::record::HistoryEntry;

/// Everything one stage change writes, and what it must find to write it.
#[derive(Debug, Clone, PartialEq)]
pub struct StageChange {
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
    /// Annotations that exist and go (set only when they were seen on the workflow).
    pub remove_annotations: Vec<String>,
    /// Set when the patch is built from a read of the workflow: the whole object must be as read,
    /// which also makes it safe to create a missing annotations map.
    pub resource_version: Option<String>,
    /// The workflow has no annotations map yet (`add` into a missing map fails).
    pub create_annotations_map: bool,
}

impl StageChange {
    pub fn new(from: &str, to: &str, entry: &HistoryEntry) -> Self {
        Self {
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
                serde_json::to_string(entry).expect("history entry serializes"),
            )],
            remove_annotations: Vec::new(),
            resource_version: None,
            create_annotations_map: false,
        }
    }

    pub fn to_patch(&self) -> Patch {
        let mut ops = Vec::new();
        if let Some(version) = &self.resource_version {
            ops.push(test(&["metadata", "resourceVersion"], version));
        }
        ops.push(test(
            &["metadata", "labels", labels::CURRENT_STAGE],
            &self.from,
        ));
        for (key, value) in &self.expect_labels {
            ops.push(test(&["metadata", "labels", key], value));
        }
        for (key, value) in &self.expect_annotations {
            ops.push(test(&["metadata", "annotations", key], value));
        }
        ops.push(PatchOperation::Replace(ReplaceOperation {
            path: pointer(&["metadata", "labels", labels::CURRENT_STAGE]),
            value: Value::String(self.to.clone()),
        }));
        for (key, value) in &self.set_labels {
            ops.push(add(
                &["metadata", "labels", key],
                Value::String(value.clone()),
            ));
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
                ops.push(add(
                    &["metadata", "annotations", key],
                    Value::String(value.clone()),
                ));
            }
            for key in &self.remove_annotations {
                ops.push(PatchOperation::Remove(RemoveOperation {
                    path: pointer(&["metadata", "annotations", key]),
                }));
            }
        }
        Patch(ops)
    }
}

/// Removes annotations that were seen on the workflow; used to trim the history. Each `test`
/// keeps a concurrent trim from turning into an error for the other side.
pub fn remove_annotations(seen: &[(String, String)]) -> Patch {
    let mut ops = Vec::new();
    for (key, value) in seen {
        ops.push(test(&["metadata", "annotations", key], value));
        ops.push(PatchOperation::Remove(RemoveOperation {
            path: pointer(&["metadata", "annotations", key]),
        }));
    }
    Patch(ops)
}

/// A JSON Pointer from unescaped tokens: `/` in a label key becomes `~1`, `~` becomes `~0`.
fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

fn test(tokens: &[&str], value: &str) -> PatchOperation {
    PatchOperation::Test(TestOperation {
        path: pointer(tokens),
        value: Value::String(value.to_string()),
    })
}

fn add(tokens: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: pointer(tokens),
        value,
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
        change
            .remove_annotations
            .push("stagectl.dev/latch-b".into());
        let text = serde_json::to_string(&change.to_patch()).unwrap();
        assert!(!text.contains("workflows.argoproj.io"));
    }
}
