//! The options every subcommand shares, as kubectl names them, and what the process learns from
//! its environment (who it is). Validated before anything is sent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::cluster::{Cluster, ConnectOptions};
use crate::core::labels;
use crate::core::pipeline::{self, PIPELINE_ENV};
use crate::core::record::clean_reason;
use crate::core::stage::{Pipeline, STAGES_ENV};
use crate::error::{Error, Result};
use crate::output::Format;

/// Options every subcommand takes, as kubectl names them.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file; default: $KUBECONFIG, ~/.kube/config, or in a pod its ServiceAccount.
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Act as this user (impersonation, as kubectl's --as; RBAC must allow it).
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Act as a member of this group too (repeatable; needs --as), e.g. the stage-machine
    /// policy's break-glass group.
    #[arg(
        long = "as-group",
        global = true,
        value_name = "GROUP",
        requires = "as_user"
    )]
    pub as_group: Vec<String>,
    /// The namespace; default: the context's, or in a pod its own.
    #[arg(long, short = 'n', global = true, env = "STAGECTL_NAMESPACE")]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// How long each API operation may keep retrying transient failures, e.g. 30s, 2m. Waits
    /// (--wait, --wait-for-node) have budgets of their own.
    #[arg(long, global = true, env = "STAGECTL_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The pipeline definition (YAML, as workflow-templates/pipeline.yaml) for pipelines other
    /// than the built-in play: a file, or the definition itself as one line of JSON (what
    /// `stagectl pipeline definition` prints; a play template passes it to its first step).
    #[arg(long, global = true, env = PIPELINE_ENV, value_name = "FILE", conflicts_with = "stages")]
    pub pipeline: Option<PathBuf>,
    /// Only a stage order, comma-separated, with no events: what `--pipeline` says, without
    /// what reconcile and the Sensors need.
    #[arg(long, global = true, env = STAGES_ENV, value_name = "A,B,C")]
    pub stages: Option<String>,
    /// More log output (-v debug, -vv trace); logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    quiet: u8,
}

impl GlobalArgs {
    pub fn verbosity(&self) -> i8 {
        self.verbose.min(3) as i8 - self.quiet.min(3) as i8
    }
}

/// The global options, validated; nothing has been sent yet.
pub struct Settings {
    pub pipeline: Pipeline,
    pub output: Format,
    /// Who makes the changes, for histories, deliveries and Events.
    pub actor: String,
    connect: ConnectOptions,
}

impl Settings {
    pub fn from_args(global: &GlobalArgs) -> Result<Self> {
        let pipeline = match (&global.pipeline, &global.stages) {
            (Some(path), _) => read_pipeline(path)?,
            (None, Some(list)) => Pipeline::parse(list)?,
            (None, None) => Pipeline::default(),
        };
        if let Some(namespace) = &global.namespace {
            labels::validate_namespace(namespace)?;
        }
        Ok(Self {
            pipeline,
            output: global.output,
            actor: actor(),
            connect: ConnectOptions {
                kubeconfig: global.kubeconfig.clone(),
                context: global.context.clone(),
                impersonate: global.as_user.clone(),
                impersonate_groups: global.as_group.clone(),
                namespace: global.namespace.clone(),
                timeout: global.timeout,
            },
        })
    }

    /// Connects; commands call it only once their own inputs are validated, so that bad input
    /// is reported as such, whatever the state of the cluster or the kubeconfig.
    pub async fn connect(&self) -> Result<Cluster> {
        Cluster::connect(&self.connect, &self.actor).await
    }
}

/// A definition from a file, read no further than the largest a definition may be; or given
/// inline, as JSON (a path never starts with `{`).
pub fn read_pipeline(path: &Path) -> Result<Pipeline> {
    use std::io::Read;
    if let Some(inline) = path.to_str().filter(|p| p.trim_start().starts_with('{')) {
        return pipeline::parse(inline, "given inline (--pipeline)");
    }
    let shown = path.display();
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(pipeline::SIZE_MAX as u64 + 1)
                .read_to_string(&mut text)
        })
        .map_err(|err| {
            Error::usage(format!(
                "cannot read pipeline {shown}: {err}; pass the path of a definition (YAML)"
            ))
        })?;
    pipeline::parse(&text, &shown.to_string())
}

/// Who is making a change, for the history and Events: `STAGECTL_ACTOR` if set; in a pod its
/// name (a workflow step's pod names the workflow and the step); elsewhere user@host.
fn actor() -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(actor) = var("STAGECTL_ACTOR") {
        return clean_reason(&actor).chars().take(253).collect();
    }
    let host = var("HOSTNAME")
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    if var("KUBERNETES_SERVICE_HOST").is_some() {
        return format!("pod/{host}");
    }
    match var("USER") {
        Some(user) => format!("{user}@{host}"),
        None => host,
    }
}

/// Durations as people write them: `90s`, `2m`, `1m30s`, `500ms`.
const LONGEST: Duration = Duration::from_secs(366 * 24 * 3600);

pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let parsed: jiff::SignedDuration = text
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write it like 30s, 2m or 1m30s"))?;
    let duration = Duration::try_from(parsed).map_err(|_| format!("{text:?} is negative"))?;
    if duration.is_zero() {
        return Err("the duration must be longer than zero".to_string());
    }
    // Every duration stagectl takes is a budget or an age; a year bounds them all, and keeps
    // the clock arithmetic they go into far from overflowing.
    if duration > LONGEST {
        return Err(format!(
            "{text:?} is longer than a year; give at most 8784h"
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("8784h"), Ok(LONGEST));
        for bad in ["", "soon", "-5s", "0s", "8785h", "9223372036854775807s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
