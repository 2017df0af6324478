use clap::Args;
use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::time::Instant;

use super::{Context, Settings, SubjectArgs};
use crate::error::{Error, Result};
use crate::output::{self, Format};
use crate::record::StageRecord;
use crate::transition::Subject;

pub const AFTER_HELP: &str = "\
Examples:
  # In a script: is the play where it should be?
  stagectl verify waiting-pr-created --workflow play-task-42-x7k2p --task-id 42

  # Wait up to two minutes for it to get there:
  stagectl verify completed --workflow play-task-42-x7k2p --wait --timeout 2m";

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The stage the workflow should be at.
    pub stage: String,
    /// The Workflow to check.
    #[arg(long, short = 'w', env = "STAGECTL_WORKFLOW")]
    pub workflow: String,
    /// The task the workflow should be the play of.
    #[arg(long)]
    pub task_id: Option<String>,
    /// Watch until the workflow is at the stage, or --timeout passes.
    #[arg(long)]
    pub wait: bool,
}

pub async fn run(settings: &Settings, args: &VerifyArgs) -> Result<()> {
    let stage = settings.pipeline.validate(&args.stage)?;
    let subject = SubjectArgs::validate(&args.workflow, args.task_id.as_deref(), None)?;
    let ctx = &settings.connect().await?;
    let subject = subject.in_namespace_of(ctx);
    let record = StageRecord::from_meta(
        &ctx.cluster
            .get_meta(&subject.namespace, &subject.name)
            .await?
            .metadata,
    );
    let mut mismatch = check(&record, &subject, stage);
    if mismatch.is_some() && args.wait {
        mismatch = wait(ctx, &subject, stage).await?;
    }
    match mismatch {
        None => {
            let line = match ctx.output {
                Format::Json | Format::Yaml => {
                    output::render(&record_at(&subject, stage), ctx.output)
                }
                Format::Name => output::resource_name(&subject.name) + "\n",
                _ => format!("{} is at {stage}\n", output::resource_name(&subject.name)),
            };
            output::emit(&line);
            Ok(())
        }
        Some(why) => Err(Error::Mismatch(why)),
    }
}

#[derive(serde::Serialize)]
struct Verified<'a> {
    workflow: &'a str,
    namespace: &'a str,
    stage: &'a str,
}

fn record_at<'a>(subject: &'a Subject, stage: &'a str) -> Verified<'a> {
    Verified {
        workflow: &subject.name,
        namespace: &subject.namespace,
        stage,
    }
}

/// Why the workflow is not what was asked for, or `None` when it is.
fn check(record: &StageRecord, subject: &Subject, stage: &str) -> Option<String> {
    if let (Some(wanted), actual) = (&subject.task_id, &record.task_id)
        && actual.as_ref() != Some(wanted)
    {
        return Some(format!(
            "workflow {} is the play of task {}, not {wanted}",
            subject.name,
            actual.as_deref().unwrap_or("<none>")
        ));
    }
    match record.stage.as_deref() {
        Some(current) if current == stage => None,
        current => Some(format!(
            "workflow {} is at {}, not {stage}",
            subject.name,
            current.unwrap_or("<no stage>")
        )),
    }
}

/// Watches the one workflow until it matches or the deadline passes.
async fn wait(ctx: &Context, subject: &Subject, stage: &str) -> Result<Option<String>> {
    let api = ctx.cluster.workflow_metas(&subject.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", subject.name));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let deadline = Instant::now() + ctx.cluster.timeout();
    let mut last = Some(format!("workflow {} did not reach {stage}", subject.name));
    loop {
        let event = match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) | Ok(None) => {
                return Ok(
                    last.map(|why| format!("{why} within {}s", ctx.cluster.timeout().as_secs()))
                );
            }
            Ok(Some(event)) => event,
        };
        match event {
            Ok(Event::Apply(meta) | Event::InitApply(meta)) => {
                last = check(&StageRecord::from_meta(&meta.metadata), subject, stage);
                if last.is_none() {
                    return Ok(None);
                }
            }
            Ok(Event::Delete(_)) => {
                return Err(Error::NotFound(format!(
                    "workflow {} was deleted while waiting",
                    subject.name
                )));
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "watch interrupted; resuming"),
        }
    }
}
