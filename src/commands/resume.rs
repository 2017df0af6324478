use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use jiff::Timestamp;
use tracing::{error, info};

use crate::cluster::Cluster;
use crate::core::event::EventFacts;
use crate::core::labels::{self, Repository, TaskId};
use crate::core::latch::Delivery;
use crate::core::resume::EventRequest;
use crate::core::stage::Stage;
use crate::error::{Error, Result};
use crate::operations::deliver::{Resumed, deliver};
use crate::output::{self, Format};
use crate::settings::{Settings, parse_duration};

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
    #[command(flatten)]
    pub facts: FactArgs,
    /// How long to wait for the controller to create the suspend node of a stage the play is at.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub wait_for_node: Duration,
    /// Write the outcome (latched, resumed or noop) to this file, for the template's output
    /// parameter and metrics: the controller cannot count a wait resumed from outside itself.
    #[arg(long, value_name = "PATH")]
    pub outcome_file: Option<PathBuf>,
}

/// What the webhook's payload says, as a Sensor passes it: with `--action`, resume checks that
/// the event releases the stage's wait before it writes anything. Empty values count as absent,
/// as a Sensor passes a field the payload lacks.
#[derive(Debug, Args)]
#[command(next_help_heading = "The event's facts (from a Sensor)")]
pub struct FactArgs {
    /// The payload's action (opened, labeled, submitted, closed, completed); needs --event.
    #[arg(long, requires = "event")]
    pub action: Option<String>,
    /// label.name of a labeled event.
    #[arg(long)]
    pub label: Option<String>,
    /// review.state of a review.
    #[arg(long)]
    pub review_state: Option<String>,
    /// pull_request.merged of a closed event (true or false).
    #[arg(long)]
    pub merged: Option<String>,
    /// The conclusion of a check suite or workflow run.
    #[arg(long)]
    pub conclusion: Option<String>,
    /// workflow_run.name of a workflow run.
    #[arg(long)]
    pub workflow_name: Option<String>,
    /// When the event happened on GitHub (RFC 3339: a review's submitted_at, the pull
    /// request's, check suite's or workflow run's updated_at): an event that happened before
    /// the play's current pass began releases nothing of it.
    #[arg(long, value_name = "TIME")]
    pub occurred_at: Option<String>,
}

impl FactArgs {
    fn facts(&self, event: Option<&str>) -> Result<Option<EventFacts>> {
        let given = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        let Some(action) = given(&self.action) else {
            return Ok(None);
        };
        let merged = match given(&self.merged).as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(Error::usage(format!(
                    "--merged {:?}: give true or false",
                    labels::shorten(other)
                )));
            }
        };
        let occurred_at = match given(&self.occurred_at) {
            None => None,
            Some(text) => Some(text.parse::<jiff::Timestamp>().map_err(|_| {
                Error::usage(format!(
                    "--occurred-at {:?}: give a time as GitHub writes it, e.g. 2026-12-07T10:00:00Z",
                    labels::shorten(&text)
                ))
            })?),
        };
        Ok(Some(EventFacts {
            occurred_at,
            event: event.unwrap_or_default().to_string(),
            action,
            label: given(&self.label),
            review_state: given(&self.review_state),
            merged,
            conclusion: given(&self.conclusion),
            workflow: given(&self.workflow_name),
        }))
    }
}

pub async fn run(settings: &Settings, args: &ResumeArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let stage = waiting_stage(settings, &args.stage)?;
    let facts = args.facts.facts(args.event.as_deref())?;
    let cluster = settings.connect().await?;
    let request = event_request(settings, args, (stage, facts), &cluster.namespace)?;
    let result = deliver(settings, &cluster, &request, args.wait_for_node).await;
    log_result(&cluster, &request, &result, started.elapsed());
    let done = result?;
    if let Some(path) = &args.outcome_file {
        std::fs::write(path, done.outcome.as_str()).with_context(|| {
            format!(
                "the event was {}, but {} cannot be written",
                done.outcome.as_str(),
                path.display()
            )
        })?;
    }
    output::emit(&render(&done, settings.output));
    Ok(())
}

/// The stage named: a wait of the pipeline given, or a stage it does not know, which the play's
/// own pipeline decides once the play is read.
fn waiting_stage(settings: &Settings, name: &str) -> Result<Stage> {
    let pipeline = &settings.pipeline;
    let stage = pipeline.named_stage(name)?;
    if pipeline.is_waiting(&stage) || !stage.is_known() {
        return Ok(stage);
    }
    Err(Error::usage(format!(
        "{stage} is not a waiting stage: resume ends the wait of one of {}",
        pipeline
            .waiting_stages()
            .map(|s| s.name().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The event as the arguments give it, validated; its time is now.
fn event_request(
    settings: &Settings,
    args: &ResumeArgs,
    (stage, facts): (Stage, Option<EventFacts>),
    namespace: &str,
) -> Result<EventRequest> {
    let token = |what: &str, value: Option<&str>| -> Result<Option<String>> {
        Ok(value
            .map(|value| labels::validate_token(what, value))
            .transpose()?
            .map(str::to_string))
    };
    Ok(EventRequest {
        namespace: namespace.to_string(),
        stage,
        task_id: TaskId::parse(&args.task_id)?,
        repository: args
            .repository
            .as_deref()
            .map(Repository::parse)
            .transpose()?,
        delivery: Delivery {
            delivery_id: token("delivery id", args.delivery_id.as_deref())?,
            event: token("event", args.event.as_deref())?,
            at: Timestamp::now(),
            by: settings.actor.clone(),
            verdict: Default::default(),
        },
        facts,
        pass: None,
    })
}

/// The one log line of a resume: what it did, or why it failed, and what it cost.
fn log_result(
    cluster: &Cluster,
    request: &EventRequest,
    result: &Result<Resumed>,
    took: std::time::Duration,
) {
    let duration_ms = took.as_millis() as u64;
    let requests = cluster.requests();
    let attempts = cluster.retries() + 1;
    let (stage, task_id) = (request.stage.name(), request.task_id.as_str());
    let (delivery_id, event) = (
        request.delivery.delivery_id.as_deref(),
        request.delivery.event.as_deref(),
    );
    match result {
        Ok(done) => info!(
            workflow = %done.workflow,
            namespace = %done.namespace,
            stage,
            task_id,
            outcome = done.outcome.as_str(),
            detail = %done.detail,
            delivery_id,
            event,
            attempts,
            requests,
            duration_ms,
            "resume"
        ),
        Err(err) => error!(
            stage,
            task_id,
            outcome = if err.kind == crate::error::Kind::Refused { "refused" } else { "failed" },
            error_class = err.outcome(),
            error = %err,
            delivery_id,
            event,
            attempts,
            requests,
            duration_ms,
            "resume"
        ),
    }
}

fn render(done: &Resumed, format: Format) -> String {
    match format {
        Format::Json | Format::Yaml => output::render(done, format),
        Format::Name => output::resource_name(&done.workflow) + "\n",
        Format::Table | Format::Wide => format!(
            "{} {} for {}: {}\n",
            output::resource_name(&done.workflow),
            done.outcome.as_str(),
            done.stage,
            done.detail
        ),
    }
}
