use std::time::Instant;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::{Settings, SubjectArgs, report_change};
use crate::error::Result;
use crate::record::{ChangeKind, clean_reason};
use crate::stage::FAILED;
use crate::transition::{self, Request};

pub const AFTER_HELP: &str = "\
Examples:
  # The step after Rex, in a workflow template:
  stagectl set waiting-pr-created --workflow {{workflow.name}} -n {{workflow.namespace}}

  # The template's wait step runs only if the event has not arrived already:
  stagectl set waiting-pr-created --workflow {{workflow.name}} --skip-wait-file /tmp/skip-wait

  # Give up on a play, with a reason kept in its history:
  stagectl set failed --workflow play-task-42-x7k2p --reason 'agent crashed'

  # Move anyway (recorded as forced):
  stagectl set waiting-pr-approved --workflow play-task-42-x7k2p --force";

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The stage to move to: the next one in the order, or `failed`.
    pub stage: String,
    /// The Workflow to change.
    #[arg(long, short = 'w', env = "STAGECTL_WORKFLOW")]
    pub workflow: String,
    /// Refuse unless the workflow is the play of this task (its task-id label is written if missing).
    #[arg(long)]
    pub task_id: Option<String>,
    /// Refuse unless the workflow is of this repository, OWNER/REPO (written if missing).
    #[arg(long)]
    pub repository: Option<String>,
    /// Why, for the history and the Event.
    #[arg(long)]
    pub reason: Option<String>,
    /// Allow any move, not only one step forward; the history says it was forced.
    #[arg(long)]
    pub force: bool,
    /// Write `true` to this file when the event the new stage waits for has already arrived
    /// (so the template can skip its wait step with `when`), `false` otherwise.
    #[arg(long, value_name = "PATH")]
    pub skip_wait_file: Option<PathBuf>,
}

pub async fn run(settings: &Settings, args: &SetArgs) -> Result<()> {
    let started = Instant::now();
    let target = settings.pipeline.validate(&args.stage)?;
    let subject = SubjectArgs::validate(
        &args.workflow,
        args.task_id.as_deref(),
        args.repository.as_deref(),
    )?;
    let reason = args.reason.as_deref().map(clean_reason);
    let ctx = settings.connect().await?;
    let subject = subject.in_namespace_of(&ctx);
    // A step forward knows the stage it starts from without asking; `failed` (from any unfinished
    // stage) and forced moves read the workflow first.
    let expected_from = match (args.force, target) {
        (false, stage) if stage != FAILED => ctx.pipeline.predecessor(stage),
        _ => None,
    };
    let request = Request {
        subject: &subject,
        pipeline: &ctx.pipeline,
        target,
        kind: if args.force {
            ChangeKind::Forced
        } else {
            ChangeKind::Set
        },
        reason,
        expected_from,
    };
    let result = transition::apply(&ctx.cluster, &request, |record| {
        let current = record.stage.as_deref().unwrap_or_default();
        ctx.pipeline.plan_set(current, target, args.force)
    })
    .await;
    let change = report_change(&ctx, started, (&subject.name, target), result)?;
    if let Some(path) = &args.skip_wait_file {
        let skip = change.skip_wait.unwrap_or(false);
        std::fs::write(path, if skip { "true" } else { "false" }).with_context(|| {
            format!(
                "the stage is {target}, but {} cannot be written",
                path.display()
            )
        })?;
    }
    Ok(())
}
