//! `stagectl reconcile`: brings every play that waits level with GitHub. A webhook can be lost
//! (the EventSource down, a network fault, a delivery GitHub gave up on) and GitHub does not
//! send it again by itself; reconcile asks GitHub whether each awaited event has happened and
//! delivers it through resume's own path, under a delivery id that makes a repeat a no-op.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use jiff::Timestamp;
use tracing::info;

mod cache;
mod report;

use cache::StoredCache;
use report::{Action, PlayReport, Report, render, report, write_outputs};

use crate::cluster::Cluster;
use crate::core::labels;
use crate::core::pipeline::Pipelines;
use crate::core::reconcile::{self, Decision, GitHubFacts, Read, WaitingPlay};
use crate::core::record::StageRecord;
use crate::error::{Error, Result};
use crate::github::{Credentials, GitHub, Options, Sources};
use crate::operations::deliver::deliver;
use crate::output::{self};
use crate::settings::{Settings, parse_duration};

pub const AFTER_HELP: &str = "\
For every play waiting in the namespace (workflow-type=play-orchestration, at a waiting stage),
reconcile asks GitHub whether the event the stage awaits has happened, on the task's one open
pull request (a task-<id> label, else the head branch, as the Sensors find it):
  waiting-pr-created    the pull request is open
  waiting-ready-for-qa  it has the ready-for-qa label
  waiting-pr-approved   a reviewer's latest review approves it
and delivers it as `stagectl resume` would, with the delivery id reconcile.STAGE.prNUMBER: a
wait a webhook already released is left alone, and a second run writes nothing. All of GitHub
is read before anything is written. A 5xx, a dropped connection or no answer is tried again
within --timeout, a secondary rate limit waited out as its Retry-After asks; if they outlast
it, or the rate limit runs out, nothing is written (exit 6). A play whose delivery fails does
not stop the others; the run then exits with the code of one of them: 6 if any gave up (a run
again may succeed), else the first of 1, 5, 4, 3, 2 among them.

Credentials: GITHUB_TOKEN or --github-token-file; or a GitHub App with --github-app-id,
--github-app-key-file and --github-installation-id. The token needs read access to pull
requests of the repositories.

Examples:
  # What would be delivered, without writing:
  GITHUB_TOKEN=... stagectl -n argo reconcile --dry-run
  # As the CronWorkflow runs it, as a GitHub App:
  stagectl -n argo reconcile --github-app-id 12345 --github-app-key-file /secrets/app/key.pem \\
    --github-installation-id 678 -o json
  # GitHub Enterprise Server:
  stagectl reconcile --github-api-url https://github.example.com/api/v3";

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// GitHub's REST API: https://HOST/api/v3 for GitHub Enterprise Server.
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: String,
    /// A file holding the GitHub token (a mounted Secret); without it, GITHUB_TOKEN.
    #[arg(long, value_name = "PATH")]
    pub github_token_file: Option<PathBuf>,
    /// The token, from the environment: hidden, as a flag would show it to `ps`.
    #[arg(long, env = "GITHUB_TOKEN", hide = true, hide_env_values = true)]
    pub github_token: Option<String>,
    /// Act as this GitHub App's installation (with --github-app-key-file and
    /// --github-installation-id).
    #[arg(long, env = "GITHUB_APP_ID", value_name = "ID")]
    pub github_app_id: Option<u64>,
    /// The GitHub App's private key, PEM.
    #[arg(long, env = "GITHUB_APP_KEY_FILE", value_name = "PATH")]
    pub github_app_key_file: Option<PathBuf>,
    /// The installation of the GitHub App on the repositories' owner.
    #[arg(long, env = "GITHUB_APP_INSTALLATION_ID", value_name = "ID")]
    pub github_installation_id: Option<u64>,
    /// Show what would be delivered; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The ConfigMap that keeps GitHub's ETags between runs, so that a run where nothing
    /// changed costs almost nothing of the rate limit; "" keeps none.
    #[arg(long, default_value = "stagectl-reconcile-cache", value_name = "NAME")]
    pub cache_configmap: String,
    /// How long to wait for GitHub's rate limit to reset; without it, or past it, stop
    /// (exit 6), having written nothing.
    #[arg(long, value_parser = parse_duration)]
    pub rate_limit_wait: Option<Duration>,
    /// How long to wait for the controller to create the wait node of a play that has just
    /// entered its stage.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub wait_for_node: Duration,
    /// Write what the run counted into this directory, one number per file, for the
    /// CronWorkflow's output parameters and metrics: `recovered`, and per waiting stage
    /// `waiting-STAGE` (plays waiting) and `oldest-wait-seconds-STAGE`.
    #[arg(long, value_name = "DIR")]
    pub outputs_dir: Option<PathBuf>,
}

pub async fn run(settings: &Settings, args: &ReconcileArgs) -> Result<()> {
    let credentials = Credentials::from_sources(Sources {
        token: args.github_token.as_deref(),
        token_file: args.github_token_file.as_deref(),
        app_id: args.github_app_id,
        app_key_file: args.github_app_key_file.as_deref(),
        installation_id: args.github_installation_id,
    })?;
    let cluster = settings.connect().await?;
    let namespace = cluster.namespace.clone();
    let stored = StoredCache::read(&cluster, &args.cache_configmap).await?;
    let github = GitHub::connect(
        Options {
            api_url: args.github_api_url.clone(),
            credentials,
            timeout: cluster.timeout(),
            rate_limit_wait: args.rate_limit_wait.unwrap_or_default(),
        },
        stored.cache.clone(),
    )?;

    // Each play is decided by the definition it carries (the given one for a play without).
    let mut pipelines = Pipelines::new(&settings.pipeline);
    let plays = cluster
        .list_labelled(
            Some(&namespace),
            &[(labels::WORKFLOW_TYPE, labels::PLAY.to_string())],
            |meta| StageRecord::from_meta(meta, pipelines.of_or_fallback(meta)),
        )
        .await?;
    let waiting = reconcile::waiting_plays(plays);
    // Everything GitHub says is read before anything is written.
    let facts = read_github(&github, &waiting).await?;
    let (reports, failures) = act(settings, args, &cluster, &waiting, &facts).await;

    if !args.dry_run {
        stored.keep(&cluster, github.cache_to_keep()).await?;
    }

    let report = Report {
        namespace,
        dry_run: args.dry_run,
        recovered: reports
            .iter()
            .filter(|play| play.action.recovered())
            .count(),
        github: github.cost(),
        plays: reports,
    };
    info!(
        namespace = %report.namespace,
        waiting = report.plays.len(),
        recovered = report.recovered,
        failed = failures.len(),
        github_requests = report.github.requests,
        github_not_modified = report.github.not_modified,
        dry_run = args.dry_run,
        "reconcile"
    );
    if let Some(dir) = &args.outputs_dir {
        write_outputs(dir, settings, &report)?;
    }
    output::emit(&render(&report, settings.output));
    match reconcile::run_failure(failures) {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

/// What core decided for each waiting play, done (or, in a dry run, said): each delivery goes
/// through resume's own path. A failed delivery does not stop the others.
async fn act(
    settings: &Settings,
    args: &ReconcileArgs,
    cluster: &Cluster,
    waiting: &[WaitingPlay],
    facts: &GitHubFacts,
) -> (Vec<PlayReport>, Vec<Error>) {
    let mut failures = Vec::new();
    let mut reports = Vec::new();
    for play in waiting {
        let decision = reconcile::decide(play, facts);
        let mut report = report(play, &decision);
        if let Decision::Deliver(delivery) = &decision {
            if args.dry_run {
                report.action = Action::WouldDeliver;
            } else {
                let event = play.event(
                    &cluster.namespace,
                    delivery,
                    &settings.actor,
                    Timestamp::now(),
                );
                match deliver(settings, cluster, &event, args.wait_for_node).await {
                    Ok(done) => {
                        report.action = Action::Delivered(done.outcome);
                        report.detail = done.detail;
                    }
                    Err(err) => {
                        report.action = Action::Failed;
                        report.detail = err.message().to_string();
                        failures.push(err);
                    }
                }
            }
        }
        reports.push(report);
    }
    (reports, failures)
}

/// Asks GitHub what the plays' decisions need, each thing once: the open pull requests of each
/// repository, and per play what its wait needs beside (reviews, merged pull requests, check
/// suites or workflow runs on a head). The core says what to read next.
async fn read_github(github: &GitHub, waiting: &[WaitingPlay]) -> Result<GitHubFacts> {
    let mut facts = GitHubFacts::default();
    for play in waiting {
        while let Some(read) = facts.next_read(play) {
            match read {
                Read::OpenPulls(repository) => {
                    let pulls = github.open_pulls(&repository).await?;
                    facts.add_pulls(&repository, pulls);
                }
                Read::Reviews(repository, pull) => {
                    let reviews = github.reviews(&repository, pull).await?;
                    facts.add_reviews(&repository, pull, reviews);
                }
                Read::MergedPulls { repository, since } => {
                    let closed = github.closed_pulls(&repository, since).await?;
                    facts.add_merged(&repository, since, closed);
                }
                Read::CheckSuites(repository, sha) => {
                    let suites = github.check_suites(&repository, &sha).await?;
                    facts.add_check_suites(&repository, &sha, suites);
                }
                Read::WorkflowRuns(repository, sha) => {
                    let runs = github.workflow_runs(&repository, &sha).await?;
                    facts.add_workflow_runs(&repository, &sha, runs);
                }
                Read::LabelEvents(repository, pull) => {
                    let added = github.label_events(&repository, pull).await?;
                    facts.add_label_events(&repository, pull, added);
                }
                Read::Commits(repository, pull) => {
                    let commits = github.commits(&repository, pull).await?;
                    facts.add_commits(&repository, pull, commits);
                }
            }
        }
    }
    Ok(facts)
}
