//! Argo Workflows node status: finding the suspend node of a stage, and the patch that resumes it
//! the way `argo resume` does. Pure functions over the Workflow's JSON.

use jiff::Timestamp;
use json_patch::{Patch, PatchOperation};
use serde_json::Value;

use crate::stage::Stage;
use crate::{labels, patch};

/// The input parameter of the play's suspend template that names the stage it waits in.
pub const STAGE_PARAMETER: &str = "stage";

/// The input parameter of the play's suspend template that names the pass it waits in: a stage
/// waited in again in a later pass has a node of its own.
pub const PASS_PARAMETER: &str = "pass";

/// What the Workflow's status says about the suspend node of one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SuspendNode {
    /// Running: waiting to be resumed.
    Active(ActiveNode),
    /// Already over (Succeeded, Failed, Error, Skipped, Omitted).
    Finished { id: String, phase: NodePhase },
    /// Not created yet: the controller has not reached the wait.
    Absent,
}

/// A node's phase, as the controller writes it (NodePhase in Argo's types). Empty or missing
/// is a node just created: Pending. One a later Argo adds is kept by name, and taken for over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodePhase {
    Pending,
    Running,
    Succeeded,
    Skipped,
    Failed,
    Error,
    Omitted,
    Other(String),
}

impl NodePhase {
    fn of(node: &Value) -> Self {
        match node["phase"].as_str().unwrap_or_default() {
            "Pending" | "" => Self::Pending,
            "Running" => Self::Running,
            "Succeeded" => Self::Succeeded,
            "Skipped" => Self::Skipped,
            "Failed" => Self::Failed,
            "Error" => Self::Error,
            "Omitted" => Self::Omitted,
            other => Self::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for NodePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Other(name) => f.write_str(name),
            known => write!(f, "{known:?}"),
        }
    }
}

/// A running suspend node: what resuming it keeps (its message) and fills in (its outputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActiveNode {
    pub id: String,
    pub message: Option<String>,
    pub outputs: Option<Value>,
}

/// Node status stagectl cannot see: Argo keeps it compressed in the object, or offloaded to its
/// database. Only the Argo Server can resume such a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable(pub &'static str);

/// Finds the suspend node whose `stage` input is `stage` and whose `pass` input is `pass` (a
/// node without one waits in the first pass), by its type and inputs, never by its position in
/// the graph. A stage visited more than once in a pass (after a rollback) can have several; a
/// running one is the one to resume.
pub(crate) fn suspend_node(
    status: &Value,
    stage: &Stage,
    pass: u32,
) -> Result<SuspendNode, Unreadable> {
    if status["offloadNodeStatusVersion"]
        .as_str()
        .is_some_and(|v| !v.is_empty())
    {
        return Err(Unreadable("offloaded to the Argo database"));
    }
    if status["compressedNodes"]
        .as_str()
        .is_some_and(|v| !v.is_empty())
    {
        return Err(Unreadable("compressed"));
    }
    let Some(nodes) = status["nodes"].as_object() else {
        return Ok(SuspendNode::Absent);
    };
    let mut found = SuspendNode::Absent;
    for (id, node) in nodes {
        let parameters = node["inputs"]["parameters"].as_array();
        let input = |name: &str| {
            parameters
                .into_iter()
                .flatten()
                .find(|p| p["name"] == name)
                .map(|p| &p["value"])
        };
        let in_pass = match input(PASS_PARAMETER) {
            Some(value) => value.as_str() == Some(pass.to_string().as_str()),
            None => pass == 1,
        };
        let waits_in_stage = node["type"] == "Suspend"
            && input(STAGE_PARAMETER).is_some_and(|value| value == stage.name())
            && in_pass;
        if !waits_in_stage {
            continue;
        }
        match NodePhase::of(node) {
            NodePhase::Running => {
                return Ok(SuspendNode::Active(ActiveNode {
                    id: id.clone(),
                    message: node["message"]
                        .as_str()
                        .filter(|m| !m.is_empty())
                        .map(str::to_string),
                    outputs: node.get("outputs").cloned(),
                }));
            }
            // Created, not yet running: as good as absent, it will run in a moment.
            NodePhase::Pending => {}
            phase => {
                found = SuspendNode::Finished {
                    id: id.clone(),
                    phase,
                }
            }
        }
    }
    Ok(found)
}

impl ActiveNode {
    /// The patch that resumes this node exactly as `argo resume` does: phase Succeeded,
    /// finishedAt `now`, `message` appended to the node's, raw output parameters set to their
    /// defaults. Its `test` operations make it a compare-and-swap on the stage label and the
    /// node's phase.
    pub(crate) fn resume_patch(
        &self,
        stage: &Stage,
        message: &str,
        now: Timestamp,
    ) -> Result<Patch, String> {
        let message = match &self.message {
            Some(previous) => format!("{previous}; {message}"),
            None => message.to_string(),
        };
        let mut ops = self.end(stage, "Succeeded", message, now)?;
        ops.extend(self.supplied_outputs_set_to_defaults()?);
        Ok(Patch(ops))
    }

    /// The patch that fails this node as `argo node set --phase Failed --message` does: phase
    /// Failed, finishedAt `now`, the message replaced; the controller then fails the workflow.
    /// The same `test` operations as [`Self::resume_patch`].
    pub(crate) fn fail_patch(
        &self,
        stage: &Stage,
        message: &str,
        now: Timestamp,
    ) -> Result<Patch, String> {
        Ok(Patch(self.end(
            stage,
            "Failed",
            message.to_string(),
            now,
        )?))
    }

    fn end(
        &self,
        stage: &Stage,
        phase: &str,
        message: String,
        now: Timestamp,
    ) -> Result<Vec<PatchOperation>, String> {
        let node_id = self.id.as_str();
        let node = |field| ["status", "nodes", node_id, field];
        // metav1.Time: RFC 3339 in whole seconds.
        let finished_at = now
            .round(jiff::Unit::Second)
            .map_err(|e| e.to_string())?
            .to_string();
        Ok(vec![
            patch::test(&["metadata", "labels", labels::CURRENT_STAGE], stage.name()),
            patch::test(&node("type"), "Suspend"),
            patch::test(&node("phase"), "Running"),
            patch::replace(&node("phase"), phase),
            patch::add(&node("finishedAt"), finished_at),
            patch::add(&node("message"), message),
        ])
    }

    /// `argo resume` fills each output parameter the node waits to be supplied with its default.
    fn supplied_outputs_set_to_defaults(&self) -> Result<Vec<PatchOperation>, String> {
        let Some(parameters) = self
            .outputs
            .as_ref()
            .and_then(|o| o["parameters"].as_array())
        else {
            return Ok(Vec::new());
        };
        let mut ops = Vec::new();
        for (i, parameter) in parameters.iter().enumerate() {
            let Some(supplied) = parameter
                .get("valueFrom")
                .filter(|v| v.get("supplied").is_some())
            else {
                continue;
            };
            let Some(default) = supplied.get("default") else {
                return Err(format!(
                    "the suspend node's output parameter {} has no default and must be supplied; resume it with `argo resume` or `argo node set`",
                    parameter["name"]
                ));
            };
            let index = i.to_string();
            let path = |field| {
                [
                    "status",
                    "nodes",
                    self.id.as_str(),
                    "outputs",
                    "parameters",
                    index.as_str(),
                    field,
                ]
            };
            ops.push(patch::add(&path("value"), default.clone()));
            ops.push(patch::remove(&path("valueFrom")));
        }
        Ok(ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::Pipeline;
    use serde_json::json;

    fn workflow(nodes: Value) -> Value {
        json!({"metadata": {"labels": {"current-stage": "waiting-pr-created"}}, "status": {"nodes": nodes}})
    }

    fn stage(name: &str) -> Stage {
        Pipeline::default().stage(name)
    }

    fn node_of(workflow: &Value, name: &str) -> Result<SuspendNode, Unreadable> {
        suspend_node(&workflow["status"], &stage(name), 1)
    }

    fn suspend(id: &str, stage: &str, phase: &str) -> Value {
        json!({"id": id, "name": format!("play.wait-{id}"), "type": "Suspend", "phase": phase,
               "templateName": "wait-for-event",
               "inputs": {"parameters": [{"name": "stage", "value": stage}]}})
    }

    #[test]
    fn the_suspend_node_is_found_by_its_stage_input_not_its_place() {
        let wf = workflow(json!({
            "play": {"id": "play", "name": "play", "type": "DAG", "phase": "Running"},
            "a": suspend("a", "waiting-ready-for-qa", "Running"),
            "b": suspend("b", "waiting-pr-created", "Running"),
        }));
        assert!(
            matches!(node_of(&wf, "waiting-pr-created"), Ok(SuspendNode::Active(node)) if node.id == "b")
        );
        assert_eq!(node_of(&wf, "waiting-pr-approved"), Ok(SuspendNode::Absent));
    }

    #[test]
    fn finished_pending_and_skipped_waits_are_told_apart() {
        let wf = workflow(json!({
            "a": suspend("a", "waiting-pr-created", "Succeeded"),
            "b": suspend("b", "waiting-ready-for-qa", "Pending"),
            // A wait skipped by `when` is a Skipped node without inputs: not a suspend node at all.
            "c": {"id": "c", "name": "play.wait-pr-approved", "type": "Skipped", "phase": "Skipped"},
        }));
        assert_eq!(
            node_of(&wf, "waiting-pr-created"),
            Ok(SuspendNode::Finished {
                id: "a".into(),
                phase: NodePhase::Succeeded
            })
        );
        assert_eq!(
            node_of(&wf, "waiting-ready-for-qa"),
            Ok(SuspendNode::Absent)
        );
        assert_eq!(node_of(&wf, "waiting-pr-approved"), Ok(SuspendNode::Absent));
    }

    #[test]
    fn compressed_or_offloaded_status_is_never_guessed_at() {
        let compressed = json!({"status": {"compressedNodes": "H4sIAAAA"}});
        let offloaded = json!({"status": {"offloadNodeStatusVersion": "fnv:123", "nodes": {}}});
        assert_eq!(node_of(&compressed, "x"), Err(Unreadable("compressed")));
        assert_eq!(
            node_of(&offloaded, "x"),
            Err(Unreadable("offloaded to the Argo database"))
        );
    }

    #[test]
    fn resuming_leaves_the_node_as_argo_resume_does() {
        let mut wf = workflow(json!({"b": {
            "id": "b", "name": "play.wait", "type": "Suspend", "phase": "Running", "message": "waiting",
            "inputs": {"parameters": [{"name": "stage", "value": "waiting-pr-created"}]},
            "outputs": {"parameters": [
                {"name": "approved", "valueFrom": {"supplied": {}, "default": "yes"}},
                {"name": "plain", "value": "kept"},
            ]},
        }}));
        let now = Timestamp::from_second(1_790_000_000).unwrap();
        let Ok(SuspendNode::Active(node)) = node_of(&wf, "waiting-pr-created") else {
            panic!("the node waits: {wf}");
        };
        let patch = node
            .resume_patch(
                &stage("waiting-pr-created"),
                "Resumed by stagectl: pull_request (delivery d-1)",
                now,
            )
            .unwrap();
        json_patch::patch(&mut wf, &patch).unwrap();
        let node = &wf["status"]["nodes"]["b"];
        assert_eq!(node["phase"], "Succeeded");
        assert_eq!(node["finishedAt"], "2026-09-21T14:13:20Z");
        assert_eq!(
            node["message"],
            "waiting; Resumed by stagectl: pull_request (delivery d-1)"
        );
        assert_eq!(
            node["outputs"]["parameters"][0],
            json!({"name": "approved", "value": "yes"})
        );
        assert_eq!(
            node["outputs"]["parameters"][1],
            json!({"name": "plain", "value": "kept"})
        );

        // The same patch on the resumed node fails its test: a second resume cannot happen.
        assert!(json_patch::patch(&mut wf, &patch).is_err());
    }

    #[test]
    fn a_raw_output_without_default_is_refused() {
        let outputs = json!({"parameters": [{"name": "approved", "valueFrom": {"supplied": {}}}]});
        let now = Timestamp::from_second(1_790_000_000).unwrap();
        let node = ActiveNode {
            id: "b".into(),
            message: None,
            outputs: Some(outputs),
        };
        assert!(node.resume_patch(&stage("s"), "m", now).is_err());
    }
}
