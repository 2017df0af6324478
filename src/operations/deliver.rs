//! Delivering an event to its play: what `resume` (a webhook, through a Sensor) and
//! `reconcile` (an event GitHub shows but no webhook delivered) share.

use std::time::Duration;

use serde::Serialize;

use crate::cluster::{Cluster, Operation, Swapped, View, WaitBudget, WorkflowRef};
use crate::core::resume::{Chosen, EventRequest, Outcome, Resolution};
use crate::error::Result;
use crate::settings::Settings;

/// What resume prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Resumed {
    pub workflow: String,
    pub namespace: String,
    pub stage: String,
    pub outcome: Outcome,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<String>,
}

/// Chooses the play from one list of every play of the task, then, for a play that can take
/// the event, latches or resumes as one compare-and-swap on the whole workflow, planned on the
/// play as listed: a list and a patch, unless the play changed in between.
pub(crate) async fn deliver(
    settings: &Settings,
    cluster: &Cluster,
    request: &EventRequest,
    wait_for_node: Duration,
) -> Result<Resumed> {
    let pipeline = &settings.pipeline;
    let namespace = cluster.namespace.clone();
    let plays = cluster
        .list_labelled_whole(&namespace, &request.play_labels())
        .await?;
    let (workflow, resolution) = match request.choose_play(pipeline, &plays)? {
        Chosen::Ended(play) => (
            play.meta.name.clone().unwrap_or_default(),
            request.answer_ended(pipeline, &play.meta)?,
        ),
        Chosen::Active(play) => {
            let name = play.meta.name.clone().unwrap_or_default();
            let listed = Some(request.plan(pipeline, play));
            let op = Operation {
                workflow: WorkflowRef {
                    namespace: &namespace,
                    name: &name,
                },
                view: View::Whole,
                wait: Some(WaitBudget {
                    limit: wait_for_node,
                    flag: "--wait-for-node",
                }),
            };
            let swapped = cluster
                .compare_and_swap(op, listed, |observed| request.plan(pipeline, observed))
                .await?;
            let resolution: Resolution = match swapped {
                Swapped::Unchanged(resolution)
                | Swapped::Written {
                    then: resolution, ..
                } => resolution,
            };
            (name, resolution)
        }
    };
    Ok(Resumed {
        workflow,
        namespace,
        stage: request.stage.name().to_string(),
        outcome: resolution.outcome,
        detail: resolution.detail,
        delivery_id: request.delivery.delivery_id.clone(),
        event: request.delivery.event.clone(),
    })
}
