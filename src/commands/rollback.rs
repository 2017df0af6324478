use std::time::Instant;

use clap::Args;

use super::{Subject, apply_change, print_change, report_change};
use crate::core::change::{ChangeRequest, Goal};
use crate::core::record::clean_reason;
use crate::error::Result;
use crate::settings::Settings;

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
        .map(|stage| settings.pipeline.named_stage(stage))
        .transpose()?;
    let subject = Subject::validate(&args.workflow, None, None)?;
    let cluster = settings.connect().await?;
    let request = ChangeRequest {
        pass: None,
        workflow: subject.name,
        namespace: cluster.namespace.clone(),
        task_id: None,
        repository: None,
        goal: Goal::Rollback { to },
        reason: args.reason.as_deref().map(clean_reason),
        actor: settings.actor.clone(),
        carry: None,
    };
    let result = apply_change(settings, &cluster, &request).await;
    let change = report_change(&cluster, started, &request, result)?;
    print_change(settings, &change);
    Ok(())
}
