//! `stagectl reconcile`: brings every play that waits level with GitHub. A webhook can be lost
//! (the EventSource down, a network fault, a delivery GitHub gave up on) and GitHub does not
//! send it again by itself; reconcile asks GitHub whether each awaited event has happened and
//! delivers it through resume's own path, under a delivery id that makes a repeat a no-op.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use jiff::Timestamp;
use kube::api::ListParams;
use serde::Serialize;
use tracing::info;

use crate::cluster::{Cluster, selector};
use crate::commands::resume::deliver;
use crate::core::github::{self, Awaited, PullRequest, Review};
use crate::core::labels::{self, Repository};
use crate::core::latch::Delivery;
use crate::core::record::StageRecord;
use crate::core::resume::EventRequest;
use crate::error::{Error, Result};
use crate::github::{Cache, Credentials, GitHub, Options};
use crate::output::{self, Format};
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
it, or the rate limit runs out, nothing is written (exit 6).

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

/// The ConfigMap key of the cache.
const CACHE_KEY: &str = "github-etags.json";

/// What reconcile found and did for one waiting play.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct PlayReport {
    workflow: String,
    stage: String,
    task_id: String,
    repository: String,
    /// Since when the play waits: the change that entered the stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting_since: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pull_request: Option<u64>,
    /// What GitHub says.
    github: String,
    /// delivered-resumed, delivered-noop, would-deliver, none, failed
    action: String,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    namespace: String,
    dry_run: bool,
    plays: Vec<PlayReport>,
    /// Waits this run released: each one a webhook that was lost.
    recovered: usize,
    github: crate::github::Cost,
}

/// A play that waits, and what its stage awaits.
struct Waiting {
    report: PlayReport,
    awaited: Option<Awaited>,
    repository: Option<Repository>,
    request: Option<EventRequest>,
}

pub async fn run(settings: &Settings, args: &ReconcileArgs) -> Result<()> {
    let credentials = credentials(args)?;
    let cluster = settings.connect().await?;
    let namespace = cluster.namespace.clone();
    let cached = match args.cache_configmap.as_str() {
        "" => None,
        name => cluster.read_config_map(&namespace, name, CACHE_KEY).await?,
    };
    let cache = cached
        .as_ref()
        .and_then(|(text, _)| serde_json::from_str::<Cache>(text).ok())
        .unwrap_or_default();
    let github = GitHub::connect(
        Options {
            api_url: args.github_api_url.clone(),
            credentials,
            timeout: cluster.timeout(),
            rate_limit_wait: args.rate_limit_wait.unwrap_or_default(),
        },
        cache.clone(),
    )?;

    let mut waiting = waiting_plays(settings, &cluster).await?;
    // Everything GitHub says is read before anything is written.
    find_events(settings, &namespace, &github, &mut waiting).await?;

    let mut failures = Vec::new();
    for play in &mut waiting {
        let Some(request) = &play.request else {
            continue;
        };
        if args.dry_run {
            play.report.action = "would-deliver".into();
            continue;
        }
        match deliver(settings, &cluster, request, args.wait_for_node).await {
            Ok(done) => {
                play.report.action = format!("delivered-{}", done.outcome.as_str());
                play.report.detail = done.detail;
            }
            Err(err) => {
                play.report.action = "failed".into();
                play.report.detail = err.message().to_string();
                failures.push(err);
            }
        }
    }

    let kept = github.cache_to_keep();
    if !args.dry_run && !args.cache_configmap.is_empty() && kept != cache {
        let text = serde_json::to_string(&kept).expect("the cache serializes");
        cluster
            .write_config_map(
                &namespace,
                &args.cache_configmap,
                CACHE_KEY,
                text,
                cached.map(|(_, version)| version),
            )
            .await?;
    }

    let plays: Vec<PlayReport> = waiting.into_iter().map(|play| play.report).collect();
    let recovered = plays
        .iter()
        .filter(|play| play.action == "delivered-resumed")
        .count();
    let report = Report {
        namespace,
        dry_run: args.dry_run,
        recovered,
        github: github.cost(),
        plays,
    };
    info!(
        namespace = %report.namespace,
        waiting = report.plays.len(),
        recovered,
        failed = failures.len(),
        github_requests = report.github.requests,
        github_not_modified = report.github.not_modified,
        dry_run = args.dry_run,
        "reconcile"
    );
    output::emit(&render(&report, settings.output));
    if let Some(dir) = &args.outputs_dir {
        write_outputs(dir, settings, &report)?;
    }
    match failures.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(()),
    }
}

/// The run's counts as files: each waiting stage of the pipeline gets both of its files, zero
/// when no play waits there, so that every metric of the template has a value. A play this run
/// released no longer waits.
fn write_outputs(dir: &std::path::Path, settings: &Settings, report: &Report) -> Result<()> {
    let now = Timestamp::now();
    let mut files = vec![("recovered".to_string(), report.recovered.to_string())];
    for stage in settings.pipeline.waiting_stages() {
        let here: Vec<&PlayReport> = report
            .plays
            .iter()
            .filter(|play| play.stage == stage.name() && play.action != "delivered-resumed")
            .collect();
        let oldest = here
            .iter()
            .filter_map(|play| play.waiting_since)
            .map(|since| (now.as_second() - since.as_second()).max(0))
            .max()
            .unwrap_or(0);
        files.push((format!("waiting-{}", stage.name()), here.len().to_string()));
        files.push((
            format!("oldest-wait-seconds-{}", stage.name()),
            oldest.to_string(),
        ));
    }
    std::fs::create_dir_all(dir)
        .and_then(|()| {
            files
                .iter()
                .try_for_each(|(name, value)| std::fs::write(dir.join(name), value))
        })
        .map_err(|e| {
            Error::failed(format!(
                "the run is done, but its outputs cannot be written to {}: {e}",
                dir.display()
            ))
        })
}

fn credentials(args: &ReconcileArgs) -> Result<Credentials> {
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path)
            .map_err(|e| Error::usage(format!("cannot read {what} {}: {e}", path.display())))
    };
    match (
        args.github_app_id,
        &args.github_app_key_file,
        args.github_installation_id,
    ) {
        (Some(app_id), Some(key), Some(installation_id)) => Ok(Credentials::App {
            app_id,
            private_key_pem: read(key, "the GitHub App key file")?,
            installation_id,
        }),
        (None, None, None) => {
            let token = match &args.github_token_file {
                Some(path) => String::from_utf8_lossy(&read(path, "the GitHub token file")?)
                    .trim()
                    .to_string(),
                None => std::env::var("GITHUB_TOKEN").unwrap_or_default(),
            };
            if token.is_empty() {
                return Err(Error::usage(
                    "no GitHub credentials: set GITHUB_TOKEN, or pass --github-token-file, or a GitHub App's --github-app-id, --github-app-key-file and --github-installation-id",
                ));
            }
            Ok(Credentials::Token(token))
        }
        _ => Err(Error::usage(
            "a GitHub App needs all three of --github-app-id, --github-app-key-file and --github-installation-id",
        )),
    }
}

/// Every play of the namespace that waits in a stage, from one metadata list.
async fn waiting_plays(settings: &Settings, cluster: &Cluster) -> Result<Vec<Waiting>> {
    let pipeline = &settings.pipeline;
    let params = ListParams::default().labels_from(&selector(&[(
        labels::WORKFLOW_TYPE,
        labels::PLAY.to_string(),
    )]));
    let list = cluster.list_meta(Some(&cluster.namespace), &params).await?;
    let mut waiting = Vec::new();
    for item in list.items {
        let meta = item.metadata;
        let ended = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::ARGO_COMPLETED))
            .is_some_and(|v| v == "true");
        let record = StageRecord::from_meta(&meta);
        let Some(stage) = record.stage_in(pipeline) else {
            continue;
        };
        if ended || !pipeline.is_waiting(&stage) {
            continue;
        }
        let waiting_since = record.waiting_since(pipeline);
        let repository = record
            .repository
            .as_deref()
            .and_then(|name| Repository::parse(name).ok());
        let mut report = PlayReport {
            workflow: record.name.clone(),
            stage: stage.name().to_string(),
            task_id: record.task_id.clone().unwrap_or_default(),
            repository: record.repository.clone().unwrap_or_default(),
            waiting_since,
            pull_request: None,
            github: String::new(),
            action: "none".into(),
            detail: String::new(),
            delivery_id: None,
        };
        let awaited = Awaited::of(&stage);
        if awaited.is_none() {
            report.detail = format!(
                "{stage} is not a stage of the play pipeline; reconcile does not know its event"
            );
        } else if repository.is_none() || report.task_id.is_empty() {
            report.detail = "the play has no task-id or repository label".into();
        }
        waiting.push(Waiting {
            awaited: awaited.filter(|_| repository.is_some() && !report.task_id.is_empty()),
            repository,
            report,
            request: None,
        });
    }
    waiting.sort_by(|a, b| a.report.workflow.cmp(&b.report.workflow));
    Ok(waiting)
}

/// Asks GitHub, once per repository and once per pull request whose reviews matter, and plans
/// a delivery for each play whose event has happened.
async fn find_events(
    settings: &Settings,
    namespace: &str,
    github: &GitHub,
    waiting: &mut [Waiting],
) -> Result<()> {
    let mut pulls: BTreeMap<String, Vec<PullRequest>> = BTreeMap::new();
    let mut reviews: BTreeMap<(String, u64), Vec<Review>> = BTreeMap::new();
    for play in waiting.iter_mut() {
        let (Some(awaited), Some(repository)) = (play.awaited, play.repository.clone()) else {
            continue;
        };
        let key = repository.full_name().to_ascii_lowercase();
        if !pulls.contains_key(&key) {
            pulls.insert(key.clone(), github.open_pulls(&repository).await?);
        }
        let report = &mut play.report;
        let pull = match github::pull_of_task(&pulls[&key], &report.task_id) {
            Ok(Some(pull)) => pull.clone(),
            Ok(None) => {
                report.github = "no open pull request".into();
                continue;
            }
            Err(numbers) => {
                report.github = format!(
                    "{} open pull requests name the task: {}",
                    numbers.len(),
                    numbers
                        .iter()
                        .map(|n| format!("#{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                report.detail = "not guessed: close or relabel all but one".into();
                continue;
            }
        };
        report.pull_request = Some(pull.number);
        let its_reviews = if awaited.needs_reviews() {
            let key = (key.clone(), pull.number);
            if !reviews.contains_key(&key) {
                reviews.insert(key.clone(), github.reviews(&repository, pull.number).await?);
            }
            reviews[&key].clone()
        } else {
            Vec::new()
        };
        if !awaited.happened(&pull, &its_reviews) {
            report.github = match awaited {
                Awaited::ReadyForQa => {
                    format!("#{} not labelled {}", pull.number, github::READY_FOR_QA)
                }
                _ => format!("#{} not approved", pull.number),
            };
            continue;
        }
        report.github = match awaited {
            Awaited::PullRequestOpened => format!("#{} open", pull.number),
            Awaited::ReadyForQa => format!("#{} labelled {}", pull.number, github::READY_FOR_QA),
            Awaited::Approved => format!("#{} approved", pull.number),
        };
        let stage = settings.pipeline.stage(&report.stage);
        let delivery_id = github::delivery_id(&stage, &pull);
        report.delivery_id = Some(delivery_id.clone());
        play.request = Some(EventRequest {
            namespace: namespace.to_string(),
            stage,
            task_id: report.task_id.clone(),
            repository: Some(repository),
            delivery: Delivery {
                delivery_id: Some(delivery_id),
                event: Some(awaited.github_event().to_string()),
                at: Timestamp::now(),
                by: settings.actor.clone(),
            },
        });
    }
    Ok(())
}

fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Json | Format::Yaml => output::render(report, format),
        Format::Name => report
            .plays
            .iter()
            .filter(|play| play.delivery_id.is_some())
            .map(|play| output::resource_name(&play.workflow) + "\n")
            .collect(),
        Format::Table | Format::Wide => {
            if report.plays.is_empty() {
                return format!("No plays waiting in namespace {}.\n", report.namespace);
            }
            let now = Timestamp::now();
            let wide = format == Format::Wide;
            let mut header = vec!["WORKFLOW", "STAGE", "WAITING", "TASK", "GITHUB", "ACTION"];
            if wide {
                header.extend(["REPOSITORY", "DELIVERY", "DETAIL"]);
            }
            let rows = report.plays.iter().map(|play| {
                let mut row = vec![
                    play.workflow.clone(),
                    play.stage.clone(),
                    play.waiting_since
                        .map(|since| output::age(since, now))
                        .unwrap_or_default(),
                    play.task_id.clone(),
                    play.github.clone(),
                    play.action.clone(),
                ];
                if wide {
                    row.extend([
                        play.repository.clone(),
                        play.delivery_id.clone().unwrap_or_default(),
                        play.detail.clone(),
                    ]);
                }
                row
            });
            let table = output::columns(
                std::iter::once(header.into_iter().map(String::from).collect()).chain(rows),
            );
            let cost = format!(
                "GitHub: {} requests, {} answered 304 (free){}\n",
                report.github.requests,
                report.github.not_modified,
                if report.dry_run {
                    "; dry run, nothing written"
                } else {
                    ""
                }
            );
            table + &cost
        }
    }
}
