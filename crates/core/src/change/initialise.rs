use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{ChangeOutcome, ChangeRequest, ChangeResult, Goal, Planned};
use crate::Step;
use crate::record::StageRecord;
use crate::stage::Pipeline;
use crate::{labels, latch, patch};

impl ChangeRequest {
    /// A workflow without a stage label. Argo's controller applies the play template's
    /// `workflowMetadata` only while a workflow has no phase, and a workflow it postpones first
    /// (its parallelism throttle, which a new workflow can meet before it is admitted) gets a
    /// phase without it: the play runs with none of its labels, invisible to events, `get` and
    /// reconcile. The play's first step sets the first stage; on such a workflow, with the task
    /// and repository to write, that step gives it what the template would have. Anything else
    /// without a stage label is not a play.
    pub(super) fn initialise(
        &self,
        pipeline: &Pipeline,
        observed: &ObjectMeta,
        record: &StageRecord,
        now: Timestamp,
    ) -> Step<Planned> {
        let first = pipeline.first();
        let not_a_play = |hint: &str| {
            Step::Refuse(format!(
                "workflow {} has no {} label: it is not a play workflow ({hint})",
                self.workflow,
                labels::CURRENT_STAGE
            ))
        };
        let (Goal::Set { target, .. }, Some(task_id), Some(repository)) =
            (&self.goal, &self.task_id, &self.repository)
        else {
            return not_a_play(&format!(
                "create it from the play template, or make it one with `stagectl set {first} --task-id ID --repository OWNER/REPO`"
            ));
        };
        if target.name() != first.name() || !record.history.is_empty() {
            return not_a_play("its stage label was removed; `stagectl get` shows its history");
        }
        let mut set_labels = vec![
            (labels::WORKFLOW_TYPE.to_string(), labels::PLAY.to_string()),
            (labels::CURRENT_STAGE.to_string(), first.name().to_string()),
            (labels::TASK_ID.to_string(), task_id.to_string()),
            (labels::REPOSITORY.to_string(), repository.label_value()),
            (labels::UPDATED_AT.to_string(), now.as_second().to_string()),
        ];
        let present = observed.labels.as_ref();
        set_labels.retain(|(key, _)| present.is_none_or(|seen| !seen.contains_key(key)));
        let mut set_annotations = vec![(
            labels::REPOSITORY_ANNOTATION.to_string(),
            repository.full_name().to_string(),
        )];
        set_annotations.extend(latch::empty_latches(pipeline));
        set_annotations.extend(self.carried_annotations(pipeline, observed));
        if !set_annotations
            .iter()
            .any(|(key, _)| key == crate::pass::PASS_ANNOTATION)
        {
            set_annotations.push((crate::pass::PASS_ANNOTATION.to_string(), "1".to_string()));
        }
        let present = observed.annotations.as_ref();
        set_annotations.retain(|(key, _)| present.is_none_or(|seen| !seen.contains_key(key)));
        Step::Write {
            patch: patch::initialise(observed, &set_labels, &set_annotations),
            then: Planned {
                outcome: ChangeOutcome {
                    workflow: self.workflow.to_string(),
                    namespace: self.namespace.clone(),
                    from: None,
                    to: first.name().to_string(),
                    outcome: ChangeResult::Applied,
                    forced: false,
                    skip_wait: None,
                    pass: 1,
                    failure: None,
                    hold_until: None,
                },
                entry: None,
            },
        }
    }
}
