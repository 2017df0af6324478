use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use clap::Args;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use serde::Serialize;
use tokio::time::Instant;
use tracing::{debug, error, info};

use super::{Context, Settings};
use crate::argo;
use crate::cluster::{Target, describe, is_patch_refused};
use crate::error::{Error, Result};
use crate::labels::{self, Repository, shorten};
use crate::latch::{self, Delivery, ResumePlan};
use crate::output::{self, Format};
use crate::patch;
use crate::record;

pub const AFTER_HELP: &str = "\
What happens depends on where the play is:
  before STAGE      the event is latched; the `set` that enters STAGE honours it (outcome latched)
  at STAGE          its suspend node is resumed as `argo resume` does (outcome resumed); if the
                    controller has not created the node yet, stagectl waits for it (--wait-for-node)
  past STAGE        the wait is over; nothing to do (outcome noop)
  failed            refused
  ended             (no play of the task runs) a no-op if the newest play ended past STAGE,
                    else refused
A delivery id the workflow has already seen is a no-op: GitHub redeliveries keep their id.

Examples:
  # What the stage-resume template runs for a sensor:
  stagectl resume --stage waiting-pr-created --task-id 42 --repository acme/widgets \\
    --delivery-id 72d3162e-cc78-11e3-81ab-4c9367dc0958 --event pull_request";

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The waiting stage the event ends.
    #[arg(long)]
    pub stage: String,
    /// The task whose play the event is for.
    #[arg(long)]
    pub task_id: String,
    /// The repository, OWNER/REPO; needed when plays of several repositories share task ids.
    #[arg(long)]
    pub repository: Option<String>,
    /// GitHub's X-GitHub-Delivery id of the webhook.
    #[arg(long)]
    pub delivery_id: Option<String>,
    /// The GitHub event name (pull_request, pull_request_review, ...).
    #[arg(long)]
    pub event: Option<String>,
    /// How long to wait for the controller to create the suspend node of a stage the play is at.
    #[arg(long, default_value = "120s", value_parser = crate::cli::parse_duration)]
    pub wait_for_node: Duration,
    /// Write the outcome (latched, resumed or noop) to this file, for the template's output
    /// parameter and metrics: the controller cannot count a wait resumed from outside itself.
    #[arg(long, value_name = "PATH")]
    pub outcome_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Latched,
    Resumed,
    Noop,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Latched => "latched",
            Outcome::Resumed => "resumed",
            Outcome::Noop => "noop",
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Resumed {
    workflow: String,
    namespace: String,
    stage: String,
    outcome: Outcome,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<String>,
}

/// Compare-and-swaps lost to a concurrent writer before stagectl gives up; each loss is
/// followed by a fresh read, so more than this means something keeps fighting it.
const MAX_ROUNDS: usize = 10;

pub async fn run(settings: &Settings, args: &ResumeArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let stage = settings.pipeline.validate(&args.stage)?;
    if !settings.pipeline.is_waiting(stage) {
        return Err(Error::Usage(format!(
            "{stage} is not a waiting stage: resume ends the wait of one of {}",
            settings.pipeline.stages()[1..settings.pipeline.stages().len() - 1].join(", ")
        )));
    }
    let task_id = labels::validate_task_id(&args.task_id)?;
    let repository = args
        .repository
        .as_deref()
        .map(Repository::parse)
        .transpose()?;
    let delivery_id = args
        .delivery_id
        .as_deref()
        .map(|id| validate_token("delivery id", id))
        .transpose()?;
    let event = args
        .event
        .as_deref()
        .map(|e| validate_token("event", e))
        .transpose()?;
    let ctx = settings.connect().await?;

    let result = resume(
        &ctx,
        stage,
        task_id,
        repository.as_ref(),
        delivery_id,
        event,
        args.wait_for_node,
    )
    .await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let requests = ctx.cluster.requests();
    match &result {
        Ok(done) => {
            info!(
                workflow = %done.workflow,
                namespace = %done.namespace,
                stage,
                task_id,
                outcome = done.outcome.as_str(),
                detail = %done.detail,
                delivery_id,
                event,
                requests,
                duration_ms,
                "resume"
            );
            let text = match ctx.output {
                Format::Json | Format::Yaml => output::render(done, ctx.output),
                Format::Name => output::resource_name(&done.workflow) + "\n",
                Format::Table | Format::Wide => format!(
                    "{} {} for {stage}: {}\n",
                    output::resource_name(&done.workflow),
                    done.outcome.as_str(),
                    done.detail
                ),
            };
            output::emit(&text);
            if let Some(path) = &args.outcome_file {
                std::fs::write(path, done.outcome.as_str()).with_context(|| {
                    format!(
                        "the event was {}, but {} cannot be written",
                        done.outcome.as_str(),
                        path.display()
                    )
                })?;
            }
        }
        Err(err) => error!(
            stage,
            task_id,
            outcome = if matches!(err, Error::Refused(_)) { "refused" } else { "failed" },
            error_class = err.outcome(),
            error = %err,
            delivery_id,
            event,
            requests,
            duration_ms,
            "resume"
        ),
    }
    result.map(|_| ())
}

/// Delivery ids and event names go into annotations and messages: letters, digits, `-`, `_`, `.`.
fn validate_token<'a>(what: &str, value: &'a str) -> Result<&'a str> {
    if !value.is_empty() && labels::is_label_value(value) {
        Ok(value)
    } else {
        Err(Error::Usage(format!(
            "invalid {what} {:?}: use 1-63 letters, digits, '-', '_' or '.', as GitHub sends it",
            shorten(value)
        )))
    }
}

async fn resume(
    ctx: &Context,
    stage: &str,
    task_id: &str,
    repository: Option<&Repository>,
    delivery_id: Option<&str>,
    event: Option<&str>,
    wait_for_node: Duration,
) -> Result<Resumed> {
    let namespace = ctx.cluster.namespace.clone();
    let selected = select(ctx, &namespace, task_id, repository, delivery_id).await?;
    let name = match &selected {
        Selected::Active(name) => name.clone(),
        Selected::Ended(meta) => meta.name.clone().unwrap_or_default(),
    };
    let delivery = Delivery {
        delivery_id: delivery_id.map(str::to_string),
        event: event.map(str::to_string),
        at: Timestamp::now(),
        by: record::actor(),
    };
    let done = |outcome, detail: String| Resumed {
        workflow: name.clone(),
        namespace: namespace.clone(),
        stage: stage.to_string(),
        outcome,
        detail,
        delivery_id: delivery_id.map(str::to_string),
        event: event.map(str::to_string),
    };
    if let Selected::Ended(meta) = &selected {
        return latch::plan_for_ended_play(&ctx.pipeline, stage, meta, delivery_id)
            .map(|why| done(Outcome::Noop, why))
            .map_err(|why| Error::Refused(format!("workflow {name}: {why}")));
    }
    let target = Target::workflow(&namespace, &name);
    let node_deadline = Instant::now() + wait_for_node;
    let mut lost_races = 0;
    loop {
        let workflow = ctx.cluster.get(&namespace, &name).await?;
        let node = argo::suspend_node(
            &serde_json::to_value(&workflow).expect("workflow serializes"),
            stage,
        );
        let plan = latch::plan_resume(&ctx.pipeline, stage, &workflow.metadata, node, delivery_id);
        debug!(?plan, "resume plan");
        let (patch, outcome) = match plan {
            ResumePlan::Noop(why) => return Ok(done(Outcome::Noop, why)),
            ResumePlan::Refuse(why) => {
                return Err(Error::Refused(format!("workflow {name}: {why}")));
            }
            ResumePlan::WaitForNode => {
                if Instant::now() >= node_deadline {
                    return Err(Error::GaveUp(format!(
                        "workflow {name} is at {stage}, but the controller did not create its wait node within {}s; \
                         check that the Argo controller runs, or raise --wait-for-node",
                        wait_for_node.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            ResumePlan::Latch { from, slot } => (
                patch::latch_event(&workflow.metadata, stage, &from, slot, &delivery),
                Outcome::Latched,
            ),
            ResumePlan::Resume {
                node_id,
                message,
                outputs,
            } => {
                let text = format!("Resumed by stagectl: {}", delivery.describe());
                let record = patch::record_delivery(
                    &workflow.metadata,
                    &latch::resumed_key(stage),
                    &delivery,
                );
                let patch = argo::resume_patch(
                    stage,
                    &node_id,
                    message.as_deref(),
                    outputs.as_ref(),
                    &text,
                    Timestamp::now(),
                    record,
                )
                .map_err(|why| Error::Refused(format!("workflow {name}: {why}")))?;
                (patch, Outcome::Resumed)
            }
        };
        match ctx.cluster.patch_workflow(&namespace, &name, &patch).await {
            Ok(_) if outcome == Outcome::Latched => {
                return Ok(done(
                    outcome,
                    format!(
                        "the play is before {stage}; the `set` that enters it will honour the event"
                    ),
                ));
            }
            Ok(_) => return Ok(done(outcome, format!("the wait of {stage} is over"))),
            Err(err) if is_patch_refused(&err) => {
                lost_races += 1;
                debug!(error = %describe(&err), "the workflow changed since it was read; reading again");
                if lost_races >= MAX_ROUNDS {
                    return Err(Error::GaveUp(format!(
                        "workflow {name} kept changing while stagectl tried to deliver the event; deliver it again"
                    )));
                }
            }
            Err(err) => return Err(ctx.cluster.classify(err, &target, "patch")),
        }
    }
}

enum Selected {
    Active(String),
    /// No play of the task runs; this is the newest that has ended.
    Ended(Box<ObjectMeta>),
}

/// The play of the task (and repository) the event is for, from one list of them all
/// (metadata only): the one that has seen this delivery before, if any, so that a redelivery
/// is never applied to a later play of the same task; else the one active play — of several,
/// the one the template's mutex lets run, as the others are queued behind it (Pending); else,
/// when none runs, the newest that has ended, so that the event is answered for what it is.
async fn select(
    ctx: &Context,
    namespace: &str,
    task_id: &str,
    repository: Option<&Repository>,
    delivery_id: Option<&str>,
) -> Result<Selected> {
    let mut selector = format!(
        "{}={},{}={task_id}",
        labels::WORKFLOW_TYPE,
        labels::PLAY,
        labels::TASK_ID,
    );
    if let Some(repository) = repository {
        selector.push_str(&format!(
            ",{}={}",
            labels::REPOSITORY,
            repository.label_value()
        ));
    }
    let plays: Vec<ObjectMeta> = ctx
        .cluster
        .list_meta(Some(namespace), &ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .map(|w| w.metadata)
        .collect();
    fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
        meta.labels.as_ref()?.get(key).map(String::as_str)
    }
    let ended = |meta: &ObjectMeta| label(meta, labels::ARGO_COMPLETED) == Some("true");
    let select = |meta: &ObjectMeta| {
        if ended(meta) {
            Selected::Ended(Box::new(meta.clone()))
        } else {
            Selected::Active(meta.name.clone().unwrap_or_default())
        }
    };
    if let Some(seen_by) = delivery_id.and_then(|id| {
        plays
            .iter()
            .find(|meta| latch::delivery_seen(meta, id).is_some())
    }) {
        return Ok(select(seen_by));
    }
    let mut active: Vec<&ObjectMeta> = plays.iter().filter(|meta| !ended(meta)).collect();
    if active.len() > 1 {
        let running: Vec<&ObjectMeta> = active
            .iter()
            .copied()
            .filter(|meta| label(meta, labels::ARGO_PHASE) == Some("Running"))
            .collect();
        if running.len() == 1 {
            active = running;
        }
    }
    let of = match repository {
        Some(repository) => format!("task {task_id} of {}", repository.full_name()),
        None => format!("task {task_id}"),
    };
    match active.as_slice() {
        [] => plays
            .iter()
            .max_by_key(|meta| meta.creation_timestamp.clone().map(|t| t.0))
            .map(select)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no play workflow of {of} in namespace {namespace}: check --task-id, --repository and -n"
                ))
            }),
        [one] => Ok(select(one)),
        several => Err(Error::Refused(format!(
            "{} active play workflows of {of} in namespace {namespace} ({}); none was touched: pass --repository, or end the extra plays",
            several.len(),
            several
                .iter()
                .filter_map(|meta| meta.name.as_deref())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
