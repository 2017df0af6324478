//! One module per subcommand: its clap arguments and its `run`, which validates, calls the
//! core and the executor, and reports.

pub mod get;
pub mod pipeline;
pub mod reconcile;
pub mod resume;
pub mod rollback;
pub mod set;
pub mod verify;

use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tracing::{debug, error, info, warn};

use crate::cluster::{Cluster, Operation, Swapped, View, WorkflowRef};
use crate::core::Step;
use crate::core::change::{self, ChangeOutcome, ChangeRequest, ChangeResult, Planned};
use crate::core::labels::{Repository, TaskId, WorkflowName};
use crate::core::record::HistoryEntry;
use crate::error::{Error, Result};
use crate::output::{self, Format};
use crate::settings::Settings;

/// A workflow named on the command line with the identity it must have, validated before
/// connecting.
pub struct Subject {
    pub name: WorkflowName,
    pub task_id: Option<TaskId>,
    pub repository: Option<Repository>,
}

impl Subject {
    pub fn validate(
        workflow: &str,
        task_id: Option<&str>,
        repository: Option<&str>,
    ) -> Result<Self> {
        Ok(Self {
            name: WorkflowName::parse(workflow)?,
            task_id: task_id.map(TaskId::parse).transpose()?,
            repository: repository.map(Repository::parse).transpose()?,
        })
    }

    /// The workflow, in `namespace`.
    pub fn in_namespace<'a>(&'a self, namespace: &'a str) -> WorkflowRef<'a> {
        WorkflowRef {
            namespace,
            name: &self.name,
        }
    }
}

/// Runs a set or a rollback as one compare-and-swap, then the book-keeping of a change that
/// landed: the history trimmed, an Event.
pub async fn apply_change(
    settings: &Settings,
    cluster: &Cluster,
    request: &ChangeRequest,
) -> Result<ChangeOutcome> {
    let pipeline = &settings.pipeline;
    let op = Operation {
        workflow: workflow_of(request),
        view: View::Metadata,
        wait: None,
    };
    let unread = request.plan_unread(pipeline, Timestamp::now());
    // Every patch sent is remembered, so that a read after a lost answer can tell this
    // request's own change from someone else's (see `ChangeRequest::plan`).
    let mut attempted: Vec<HistoryEntry> = written_entry(unread.as_ref()).into_iter().collect();
    let mut landed_on = None;
    let swapped = cluster
        .compare_and_swap(op, unread, |observed| {
            let step = request.plan(pipeline, &observed.meta, Timestamp::now(), &attempted);
            match &step {
                Step::Done(Planned { entry: Some(_), .. }) => {
                    landed_on = Some(observed.meta.clone())
                }
                step => attempted.extend(written_entry(Some(step))),
            }
            step
        })
        .await?;
    match swapped {
        Swapped::Unchanged(planned) => {
            if let Some(committed) = &landed_on {
                info!(workflow = %request.workflow, "the change landed although the server's answer was lost");
                after_change(cluster, request, committed, &planned).await;
            }
            Ok(planned.outcome)
        }
        Swapped::Written { then, committed } => {
            then.confirm(&committed.meta).map_err(Error::failed)?;
            if then.entry.is_none() {
                warn!(
                    workflow = %request.workflow,
                    "the play had none of its template's labels (Argo's controller did not apply workflowMetadata); stagectl wrote them"
                );
            }
            after_change(cluster, request, &committed.meta, &then).await;
            Ok(then.outcome)
        }
    }
}

/// The workflow a change is for.
fn workflow_of(request: &ChangeRequest) -> WorkflowRef<'_> {
    WorkflowRef {
        namespace: &request.namespace,
        name: &request.workflow,
    }
}

/// The history entry a plan's patch writes, if it is a write.
fn written_entry(step: Option<&Step<Planned>>) -> Option<HistoryEntry> {
    match step? {
        Step::Write { then, .. } => then.entry.clone(),
        _ => None,
    }
}

/// Neither trimming the history nor recording the Event is worth failing a change that already
/// happened: both only log when they fail.
async fn after_change(
    cluster: &Cluster,
    request: &ChangeRequest,
    committed: &ObjectMeta,
    planned: &Planned,
) {
    if let Some(trim) = change::history_trim(committed) {
        match cluster
            .patch(
                workflow_of(request),
                View::Metadata,
                &trim,
                cluster.budget(),
            )
            .await
        {
            Ok(_) => debug!("history trimmed"),
            Err(failure) => {
                info!(error = %crate::cluster::describe(&failure.error), "history not trimmed this time; the next change tries again")
            }
        }
    }
    if let Some((reason, note)) = planned.event() {
        cluster
            .record_event(committed, reason, "ChangeStage", &note)
            .await;
    }
}

/// Writes a change's one log line; the error goes back to be reported and turned into the exit
/// code. The command prints the outcome ([`print_change`]) after the files it writes.
pub fn report_change(
    cluster: &Cluster,
    started: Instant,
    request: &ChangeRequest,
    result: Result<ChangeOutcome>,
) -> Result<ChangeOutcome> {
    let duration_ms = started.elapsed().as_millis() as u64;
    let (requests, retries) = (cluster.requests(), cluster.retries());
    let workflow = request.workflow.as_str();
    match &result {
        Ok(change) => {
            let outcome = match change.outcome {
                ChangeResult::Applied => "applied",
                ChangeResult::Noop => "noop",
                ChangeResult::PassOver => "pass-over",
            };
            info!(
                workflow,
                namespace = %change.namespace,
                from = change.from.as_deref().unwrap_or(""),
                to = %change.to,
                outcome,
                forced = change.forced,
                attempts = retries + 1,
                requests,
                duration_ms,
                "stage change"
            );
        }
        Err(err) => error!(
            workflow,
            namespace = %request.namespace,
            to = request.target_name(),
            outcome = if err.kind == crate::error::Kind::Refused { "refused" } else { "failed" },
            error_class = err.outcome(),
            error = %err,
            attempts = retries + 1,
            requests,
            duration_ms,
            "stage change"
        ),
    }
    result
}

/// Prints a change's outcome on stdout.
pub fn print_change(settings: &Settings, change: &ChangeOutcome) {
    output::emit(&render_change(change, settings.output));
}

fn render_change(change: &ChangeOutcome, format: Format) -> String {
    let name = output::resource_name(&change.workflow);
    let skipped = if change.skip_wait == Some(true) {
        "; its event already arrived, the wait is skipped"
    } else {
        ""
    };
    match format {
        Format::Json | Format::Yaml => output::render(change, format),
        Format::Name => name + "\n",
        Format::Table | Format::Wide => match (change.outcome, &change.from) {
            (ChangeResult::Applied, Some(from)) => {
                let forced = if change.forced { " (forced)" } else { "" };
                format!("{name} stage {from} → {}{forced}{skipped}\n", change.to)
            }
            (ChangeResult::Applied, None) => {
                format!("{name} stage {} (the play's labels written)\n", change.to)
            }
            _ => format!("{name} stage {} (unchanged){skipped}\n", change.to),
        },
    }
}
