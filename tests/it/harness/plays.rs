//! Plays as the tests make and drive them: created from the example, moved by the template's
//! update step, and (where no Argo controller runs) the controller's part played by writing the
//! wait's node in Argo's own node format.

use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::{TestNamespace, load_manifest};

/// How the controller meets a wait: it suspends there, or the template's `when` skips it
/// (because `set` said the wait was satisfied early).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitNode {
    Suspend,
    Skipped,
}

impl WaitNode {
    /// The node for a wait whose `set` answered `skip_wait`.
    pub fn after_set(skip_wait: bool) -> Self {
        if skip_wait {
            WaitNode::Skipped
        } else {
            WaitNode::Suspend
        }
    }
}

fn node_id(workflow: &str, stage: &str) -> String {
    format!("{workflow}-{}", stage.len() * 7919 % 100_000)
}

impl TestNamespace {
    /// Creates a play of `task` in `repository` from the example, and returns its name.
    pub async fn create_play_of(&self, task: &str, repository: &str) -> String {
        let mut workflow = load_manifest("examples/play-workflow.yaml");
        let labels = workflow.metadata.labels.as_mut().unwrap();
        labels.insert("task-id".into(), task.into());
        labels.insert("repository".into(), repository.replace('/', "."));
        workflow
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("stagectl.dev/repository".into(), repository.into());
        workflow.metadata.generate_name = Some(format!("play-{task}-"));
        let created = self
            .workflows()
            .create(&PostParams::default(), &workflow)
            .await
            .unwrap_or_else(|e| panic!("create a play of task {task}: {e}"));
        created.metadata.name.unwrap()
    }

    /// The update step of the template: `set STAGE --skip-wait-file`; true when the file says
    /// the wait is to be skipped.
    pub async fn set_stage(&self, workflow: &str, stage: &str) -> bool {
        let file = self.scratch(&format!("{workflow}-{stage}.skip"));
        self.stagectl(&[
            "set",
            stage,
            "--workflow",
            workflow,
            "-q",
            "--skip-wait-file",
            file.to_str().unwrap(),
        ])
        .await
        .assert_code(0);
        let skip = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        match skip.as_str() {
            "true" => true,
            "false" => false,
            other => panic!("skip-wait file says {other:?}"),
        }
    }

    /// What the controller writes when the DAG reaches the wait of `stage`.
    pub async fn controller_reaches_wait(&self, workflow: &str, stage: &str, wait: WaitNode) {
        self.controller_reaches_wait_in(workflow, stage, wait, 1)
            .await;
    }

    /// As [`Self::controller_reaches_wait`], in a later pass: the node of the pass, with its
    /// `pass` input as the play template gives it (the first pass's as a template without one).
    pub async fn controller_reaches_wait_in(
        &self,
        workflow: &str,
        stage: &str,
        wait: WaitNode,
        pass: u32,
    ) {
        let id = match pass {
            1 => node_id(workflow, stage),
            n => format!("{}-{n}", node_id(workflow, stage)),
        };
        let mut inputs = vec![json!({"name": "stage", "value": stage})];
        if pass > 1 {
            inputs.push(json!({"name": "pass", "value": pass.to_string()}));
        }
        let node = match wait {
            WaitNode::Skipped => json!({
                "id": id, "name": format!("{workflow}.wait-{stage}"), "displayName": format!("wait-{stage}"),
                "type": "Skipped", "phase": "Skipped", "boundaryID": workflow, "templateName": "wait-for-event",
                "message": "when 'true == false' evaluated false",
                "startedAt": "2026-11-24T10:00:00Z", "finishedAt": "2026-11-24T10:00:00Z",
            }),
            WaitNode::Suspend => json!({
                "id": id, "name": format!("{workflow}.wait-{stage}"), "displayName": format!("wait-{stage}"),
                "type": "Suspend", "phase": "Running", "boundaryID": workflow, "templateName": "wait-for-event",
                "startedAt": "2026-11-24T10:00:00Z",
                "inputs": {"parameters": inputs},
            }),
        };
        let patch = json!({"status": {"phase": "Running", "nodes": {id: node}}});
        self.workflows()
            .patch(workflow, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap_or_else(|e| panic!("write node of {stage} on {workflow}: {e}"));
    }

    /// Tess's change request for the play of `task` (of acme/widgets) arrives before her wait
    /// (latched), and the step entering the wait in pass `pass` sends the play back: to
    /// `pending`, in the next pass.
    pub async fn change_request_sends_back(&self, workflow: &str, task: &str, pass: u32) {
        let delivery = format!("changes-{workflow}-{pass}");
        let mut resume = crate::harness::resume_args("waiting-pr-approved", &delivery, &[]);
        resume[4] = task;
        resume.extend([
            "--event",
            "pull_request_review",
            "--action",
            "submitted",
            "--review-state",
            "changes_requested",
        ]);
        self.stagectl(&resume).await.assert_code(0);
        let pass = pass.to_string();
        self.stagectl(&[
            "set",
            "waiting-pr-approved",
            "--workflow",
            workflow,
            "--pass",
            &pass,
            "-q",
        ])
        .await
        .assert_code(0);
    }

    /// The wait node of `stage` as the workflow's status holds it now.
    pub async fn node(&self, workflow: &str, stage: &str) -> Value {
        let object = self.workflows().get(workflow).await.unwrap();
        serde_json::to_value(&object).unwrap()["status"]["nodes"][node_id(workflow, stage)].clone()
    }
}
