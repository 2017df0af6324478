use std::time::Duration;

use clap::Args;

use super::Subject;
use crate::cluster::{Change, Cluster, Deadline, Scope, View};
use crate::core::pipeline::Pipelines;
use crate::core::record::StageRecord;
use crate::core::stage::{Pipeline, Stage};
use crate::error::{Error, Result};
use crate::output::{self, Format};
use crate::settings::{Settings, parse_duration};

pub const AFTER_HELP: &str = "\
Examples:
  # In a script: is the play where it should be?
  stagectl verify waiting-pr-created --workflow play-task-42-x7k2p --task-id 42

  # Wait up to two minutes for it to get there:
  stagectl verify completed --workflow play-task-42-x7k2p --wait=2m";

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
    /// Watch until the workflow is at the stage, for up to DURATION (default: --timeout).
    #[arg(long, value_name = "DURATION", num_args = 0..=1, require_equals = true, value_parser = parse_duration)]
    pub wait: Option<Option<Duration>>,
}

pub async fn run(settings: &Settings, args: &VerifyArgs) -> Result<()> {
    let stage = settings.pipeline.named_stage(&args.stage)?;
    let subject = Subject::validate(&args.workflow, args.task_id.as_deref(), None)?;
    let cluster = &settings.connect().await?;
    let namespace = cluster.namespace.clone();
    let observed = cluster
        .read(
            subject.in_namespace(&namespace),
            View::Metadata,
            cluster.budget(),
        )
        .await?;
    let pipeline = &settings.pipeline;
    let mut mismatch = check(
        &StageRecord::from_meta(
            &observed.meta,
            Pipelines::new(pipeline).of_or_fallback(&observed.meta),
        ),
        &subject,
        &stage,
    );
    if let (Some(why), Some(wait)) = (&mismatch, args.wait) {
        let limit = wait.unwrap_or(cluster.timeout());
        mismatch = wait_for(
            cluster,
            &namespace,
            pipeline,
            (&subject, &stage),
            limit,
            why.clone(),
        )
        .await?;
    }
    if let Some(why) = mismatch {
        return Err(Error::mismatch(why));
    }
    let name = output::resource_name(&subject.name);
    output::emit(&match settings.output {
        Format::Json | Format::Yaml => output::render(
            &Verified {
                workflow: &subject.name,
                namespace: &namespace,
                stage: stage.name(),
            },
            settings.output,
        ),
        Format::Name => name + "\n",
        _ => format!("{name} is at {stage}\n"),
    });
    Ok(())
}

#[derive(serde::Serialize)]
struct Verified<'a> {
    workflow: &'a str,
    namespace: &'a str,
    stage: &'a str,
}

/// Why the workflow is not what was asked for, or `None` when it is.
fn check(record: &StageRecord, subject: &Subject, stage: &Stage) -> Option<String> {
    if let Some(wanted) = &subject.task_id
        && record.task_id.as_deref() != Some(wanted.as_str())
    {
        return Some(format!(
            "workflow {} is the play of task {}, not {wanted}",
            subject.name,
            record.task_id.as_deref().unwrap_or("<none>")
        ));
    }
    match &record.stage {
        Some(current) if current.name() == stage.name() => None,
        current => Some(format!(
            "workflow {} is at {}, not {stage}",
            subject.name,
            current.as_ref().map_or("<no stage>", Stage::name)
        )),
    }
}

/// Watches the one workflow until it matches, or the wait's own budget is spent; then the
/// answer says what was awaited and how things stood.
async fn wait_for(
    cluster: &Cluster,
    namespace: &str,
    pipeline: &Pipeline,
    (subject, stage): (&Subject, &Stage),
    limit: Duration,
    mut last: String,
) -> Result<Option<String>> {
    let mut watch = cluster.watch(Scope {
        namespace: Some(namespace),
        name: Some(&subject.name),
        ..Scope::default()
    });
    let deadline = Deadline::after(limit);
    loop {
        let change = match tokio::time::timeout(deadline.remaining(), watch.next(cluster)).await {
            Err(_) | Ok(None) => {
                return Ok(Some(format!(
                    "waited {}s for {stage}: {last}",
                    limit.as_secs()
                )));
            }
            Ok(Some(change)) => change?,
        };
        match change {
            Change::Item(meta) | Change::Applied(meta) => {
                let record =
                    StageRecord::from_meta(&meta, Pipelines::new(pipeline).of_or_fallback(&meta));
                match check(&record, subject, stage) {
                    None => return Ok(None),
                    Some(why) => last = why,
                }
            }
            Change::Deleted(_) => {
                return Err(Error::not_found(format!(
                    "workflow {} was deleted while waiting",
                    subject.name
                )));
            }
            Change::Relist | Change::Listed => {}
        }
    }
}
