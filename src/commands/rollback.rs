use std::time::Instant;

use clap::Args;

use super::{Settings, SubjectArgs, report_change};
use crate::error::Result;
use crate::record::{ChangeKind, clean_reason};
use crate::transition::{self, Request};

pub const AFTER_HELP: &str = "\
Examples:
  # Back to where the workflow came from:
  stagectl rollback --workflow play-task-42-x7k2p --reason 'PR was closed, reopen it'

  # Back to a named earlier stage:
  stagectl rollback --workflow play-task-42-x7k2p --to waiting-pr-created";

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The Workflow to change.
    #[arg(long, short = 'w', env = "STAGECTL_WORKFLOW")]
    pub workflow: String,
    /// The earlier stage to return to; default: the stage the workflow entered its current one from.
    #[arg(long)]
    pub to: Option<String>,
    /// Why, for the history and the Event.
    #[arg(long)]
    pub reason: Option<String>,
}

pub async fn run(settings: &Settings, args: &RollbackArgs) -> Result<()> {
    let started = Instant::now();
    let to = args
        .to
        .as_deref()
        .map(|stage| settings.pipeline.validate(stage))
        .transpose()?;
    let subject = SubjectArgs::validate(&args.workflow, None, None)?;
    let reason = args.reason.as_deref().map(clean_reason);
    let ctx = settings.connect().await?;
    let subject = subject.in_namespace_of(&ctx);
    let request = Request {
        subject: &subject,
        pipeline: &ctx.pipeline,
        // Resolved from the history once the workflow has been read; named here for messages.
        target: to.unwrap_or("previous"),
        kind: ChangeKind::Rollback,
        reason,
        expected_from: None,
    };
    let result = transition::apply(&ctx.cluster, &request, |record| {
        let current = record.stage.as_deref().unwrap_or_default();
        ctx.pipeline
            .plan_rollback(current, record.entered_from(), to)
    })
    .await;
    report_change(
        &ctx,
        started,
        (&subject.name, to.unwrap_or("previous")),
        result,
    )
    .map(|_| ())
}
