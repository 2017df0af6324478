use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;

use super::{Subject, apply_change, print_change, report_change};
use crate::core::change::{ChangeRequest, ChangeResult, Goal};
use crate::core::pipeline;
use crate::core::record::clean_reason;
use crate::core::stage::Moves;
use crate::error::{Error, Result};
use crate::settings::Settings;

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
    /// The pass the step belongs to (the play template passes its own): refused if the play is
    /// in an earlier one; once a wait of this pass has sent the play back, nothing is written
    /// and the answer is `pass-over`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub pass: Option<u32>,
    /// Write the pass the play is in afterwards to this file (the play template starts the
    /// next pass when it is not the step's own).
    #[arg(long, value_name = "PATH")]
    pub pass_file: Option<PathBuf>,
    /// For a play that is failed afterwards, write why to this file: pass-limit (sent back in
    /// its last pass), failing-event (a wait's failedBy) or step; empty otherwise. The play
    /// template's exit handler counts failed plays by it.
    #[arg(long, value_name = "PATH")]
    pub failure_file: Option<PathBuf>,
}

pub async fn run(settings: &Settings, args: &SetArgs) -> Result<()> {
    let started = Instant::now();
    let target = settings.pipeline.named_stage(&args.stage)?;
    let subject = Subject::validate(
        &args.workflow,
        args.task_id.as_deref(),
        args.repository.as_deref(),
    )?;
    let cluster = settings.connect().await?;
    let request = ChangeRequest {
        workflow: subject.name,
        namespace: cluster.namespace.clone(),
        task_id: subject.task_id,
        repository: subject.repository,
        goal: Goal::Set {
            target: target.clone(),
            moves: if args.force { Moves::Any } else { Moves::Legal },
        },
        reason: args.reason.as_deref().map(clean_reason),
        actor: settings.actor.clone(),
        // The play's first step records the definition it runs under on the play.
        carry: (target == settings.pipeline.first())
            .then(|| pipeline::to_json(&settings.pipeline))
            .flatten(),
        pass: args.pass,
    };
    let result = apply_change(settings, &cluster, &request).await;
    let change = report_change(&cluster, started, &request, result)?;
    hold(change.hold_until).await;
    if let Some(path) = &args.skip_wait_file {
        let skip = change.skip_wait.unwrap_or(false);
        std::fs::write(path, if skip { "true" } else { "false" }).with_context(|| {
            format!(
                "the stage is {target}, but {} cannot be written",
                path.display()
            )
        })?;
    }
    let failure = change.failure.map_or("", |failure| failure.as_str());
    for (file, text) in [
        (&args.pass_file, change.pass.to_string()),
        (&args.failure_file, failure.to_string()),
    ] {
        if let Some(path) = file {
            std::fs::write(path, text).with_context(|| {
                format!(
                    "the stage is {}, but {} cannot be written",
                    change.to,
                    path.display()
                )
            })?;
        }
    }
    print_change(settings, &change);
    // Entering a gate whose failing event came early fails the play instead (its history
    // names the event): the stage asked for was not reached, and the step must fail. One
    // that sent the play back (or found it sent back) ends the step's pass, which is no
    // failure: the template goes on with the next.
    let sent_back = change.outcome == ChangeResult::PassOver
        || args.pass.is_some_and(|pass| change.pass > pass);
    if change.to != target.name() && !sent_back {
        return Err(Error::refused(format!(
            "workflow {}: it went to {} instead of {target}: an early event decided that wait; \
             `stagectl get {}` shows it",
            change.workflow, change.to, change.workflow
        )));
    }
    Ok(())
}

/// The longest a step whose pass is over waits for the next pass's first whole second: that is
/// less than a second away, unless this node's clock is behind the one that wrote the pass.
const MOST_HELD: std::time::Duration = std::time::Duration::from_secs(2);

/// Returns once `until` has passed (at most [`MOST_HELD`] from now). A step whose pass is over
/// is what lets the template start the next pass: its agents must act in a second after the one
/// the pass began in, or GitHub, which dates events to the second, dates theirs before the pass
/// and resume takes them for the earlier pass's.
async fn hold(until: Option<jiff::Timestamp>) {
    let Some(until) = until else { return };
    let left = until.duration_since(jiff::Timestamp::now());
    if let Ok(left) = std::time::Duration::try_from(left) {
        tracing::debug!(until = %until, "the next pass begins its first whole second");
        tokio::time::sleep(left.min(MOST_HELD)).await;
    }
}
