//! One module per subcommand: its clap arguments and its `run`.

pub mod get;
pub mod resume;
pub mod rollback;
pub mod set;
pub mod verify;

use std::time::Instant;

use tracing::{error, info};

use crate::cli::GlobalArgs;
use crate::cluster::{Cluster, ConnectOptions};
use crate::error::{Error, Result};
use crate::labels::{self, Repository};
use crate::output::{self, Format};
use crate::stage::Pipeline;
use crate::transition::{ChangeOutcome, ChangeResult, Subject};

/// The global options, validated; nothing has been sent yet.
pub struct Settings {
    pub pipeline: Pipeline,
    pub output: Format,
    connect: ConnectOptions,
}

impl Settings {
    pub fn from_args(global: &GlobalArgs) -> Result<Self> {
        let pipeline = match &global.stages {
            Some(list) => Pipeline::parse(list)?,
            None => Pipeline::default(),
        };
        if let Some(namespace) = &global.namespace {
            labels::validate_namespace(namespace)?;
        }
        Ok(Self {
            pipeline,
            output: global.output,
            connect: ConnectOptions {
                kubeconfig: global.kubeconfig.clone(),
                context: global.context.clone(),
                namespace: global.namespace.clone(),
                timeout: global.timeout,
            },
        })
    }

    /// Connects; commands call it only once their own inputs are validated, so that bad input
    /// is reported as such, whatever the state of the cluster or the kubeconfig.
    pub async fn connect(&self) -> Result<Context> {
        Ok(Context {
            cluster: Cluster::connect(&self.connect).await?,
            pipeline: self.pipeline.clone(),
            output: self.output,
        })
    }
}

/// What every subcommand shares once connected.
pub struct Context {
    pub cluster: Cluster,
    pub pipeline: Pipeline,
    pub output: Format,
}

/// A workflow named on the command line, with the identity it must have; validated before
/// connecting, placed in a namespace after.
pub struct SubjectArgs {
    name: String,
    task_id: Option<String>,
    repository: Option<Repository>,
}

impl SubjectArgs {
    pub fn validate(
        workflow: &str,
        task_id: Option<&str>,
        repository: Option<&str>,
    ) -> Result<Self> {
        Ok(Self {
            name: labels::validate_workflow_name(workflow)?.to_string(),
            task_id: task_id
                .map(labels::validate_task_id)
                .transpose()?
                .map(str::to_string),
            repository: repository.map(Repository::parse).transpose()?,
        })
    }

    pub fn in_namespace_of(self, ctx: &Context) -> Subject {
        Subject {
            namespace: ctx.cluster.namespace.clone(),
            name: self.name,
            task_id: self.task_id,
            repository: self.repository,
        }
    }
}

/// Prints a change's outcome and writes its one log line; on failure the log line only, and the
/// error goes back to be reported and turned into the exit code.
pub fn report_change(
    ctx: &Context,
    started: Instant,
    attempted: (&str, &str),
    result: Result<ChangeOutcome>,
) -> Result<ChangeOutcome> {
    let (workflow, to) = attempted;
    let duration_ms = started.elapsed().as_millis() as u64;
    let (requests, retries) = (ctx.cluster.requests(), ctx.cluster.retries());
    match &result {
        Ok(change) => {
            let outcome = match change.outcome {
                ChangeResult::Applied => "applied",
                ChangeResult::Noop => "noop",
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
            output::emit(&render_change(change, ctx.output));
        }
        Err(err) => error!(
            workflow,
            namespace = %ctx.cluster.namespace,
            to,
            outcome = if matches!(err, Error::Refused(_)) { "refused" } else { "failed" },
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
            _ => format!("{name} stage {} (unchanged){skipped}\n", change.to),
        },
    }
}
