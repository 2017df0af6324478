//! `stagectl reconcile`: brings every play that waits level with GitHub. A webhook can be lost
//! (the EventSource down, a network fault, a delivery GitHub gave up on) and GitHub does not
//! send it again by itself; reconcile asks GitHub whether each awaited event has happened and
//! delivers it through resume's own path, under a delivery id that makes a repeat a no-op.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use jiff::Timestamp;
use serde::{Serialize, Serializer};
use tracing::{info, warn};

use crate::cluster::Cluster;
use crate::commands::resume::deliver;
use crate::core::github::{Awaited, READY_FOR_QA};
use crate::core::labels;
use crate::core::reconcile::{self, CannotTell, Decision, GitHubFacts, WaitingPlay};
use crate::core::record::StageRecord;
use crate::core::resume::Outcome;
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
    action: Action,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_id: Option<String>,
}

/// What the run did for a play; written delivered-resumed, delivered-latched, delivered-noop,
/// would-deliver, none or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Delivered(Outcome),
    WouldDeliver,
    None,
    Failed,
}

impl Action {
    fn text(self) -> String {
        match self {
            Action::Delivered(outcome) => format!("delivered-{}", outcome.as_str()),
            Action::WouldDeliver => "would-deliver".into(),
            Action::None => "none".into(),
            Action::Failed => "failed".into(),
        }
    }

    /// A wait this run released: a webhook that was lost.
    fn recovered(self) -> bool {
        self == Action::Delivered(Outcome::Resumed)
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
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

pub async fn run(settings: &Settings, args: &ReconcileArgs) -> Result<()> {
    let credentials = credentials(args)?;
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

    let plays = cluster
        .list_labelled(
            Some(&namespace),
            &[(labels::WORKFLOW_TYPE, labels::PLAY.to_string())],
        )
        .await?;
    let waiting =
        reconcile::waiting_plays(&settings.pipeline, plays.iter().map(StageRecord::from_meta));
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

/// GitHub's ETags as the ConfigMap keeps them between runs (none when its name is "").
struct StoredCache {
    configmap: String,
    cache: Cache,
    /// The ConfigMap's resourceVersion as read, to write it back under a test of it.
    version: Option<String>,
}

impl StoredCache {
    async fn read(cluster: &Cluster, configmap: &str) -> Result<Self> {
        let stored = match configmap {
            "" => None,
            name => {
                cluster
                    .read_config_map(&cluster.namespace, name, CACHE_KEY)
                    .await?
            }
        };
        let (cache, version) = match stored {
            Some((text, version)) => (
                serde_json::from_str(&text).unwrap_or_else(|err| {
                    // Only ETags are lost: this run asks GitHub for everything, and the
                    // next finds the cache it writes.
                    warn!(configmap, error = %err, "GitHub's cache is unreadable; starting without it");
                    Cache::default()
                }),
                Some(version),
            ),
            None => (Cache::default(), None),
        };
        Ok(StoredCache {
            configmap: configmap.to_string(),
            cache,
            version,
        })
    }

    /// Writes what the run learnt, when there is something new to keep.
    async fn keep(self, cluster: &Cluster, kept: Cache) -> Result<()> {
        if self.configmap.is_empty() || kept == self.cache {
            return Ok(());
        }
        let text = serde_json::to_string(&kept)
            .map_err(|e| Error::failed(format!("cannot write GitHub's cache: {e}")))?;
        cluster
            .write_config_map(
                &cluster.namespace,
                &self.configmap,
                CACHE_KEY,
                text,
                self.version,
            )
            .await
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

/// Asks GitHub once per repository, and once per pull request whose reviews a play needs.
async fn read_github(github: &GitHub, waiting: &[WaitingPlay]) -> Result<GitHubFacts> {
    let mut facts = GitHubFacts::default();
    for play in waiting {
        let Ok((_, repository)) = play.awaits() else {
            continue;
        };
        if facts.lacks_pulls(repository) {
            facts.add_pulls(repository, github.open_pulls(repository).await?);
        }
        if let Some(pull) = facts.lacks_reviews(play) {
            facts.add_reviews(repository, pull, github.reviews(repository, pull).await?);
        }
    }
    Ok(facts)
}

/// The report of a play before any delivery: what GitHub says, in words.
fn report(play: &WaitingPlay, decision: &Decision) -> PlayReport {
    let (pull_request, github, detail, delivery_id) = match decision {
        Decision::Deliver(delivery) => {
            let number = delivery.pull;
            let github = match delivery.awaited {
                Awaited::PullRequestOpened => format!("#{number} open"),
                Awaited::ReadyForQa => format!("#{number} labelled {READY_FOR_QA}"),
                Awaited::Approved => format!("#{number} approved"),
            };
            (
                Some(number),
                github,
                String::new(),
                Some(delivery.delivery_id.clone()),
            )
        }
        Decision::NotYet { pull: None, .. } => {
            (None, "no open pull request".into(), String::new(), None)
        }
        Decision::NotYet {
            awaited,
            pull: Some(number),
        } => {
            let github = match awaited {
                Awaited::ReadyForQa => format!("#{number} not labelled {READY_FOR_QA}"),
                _ => format!("#{number} not approved"),
            };
            (Some(*number), github, String::new(), None)
        }
        Decision::Ambiguous(numbers) => (
            None,
            format!(
                "{} open pull requests name the task: {}",
                numbers.len(),
                numbers
                    .iter()
                    .map(|n| format!("#{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "not guessed: close or relabel all but one".into(),
            None,
        ),
        Decision::CannotTell(CannotTell::StageWithoutEvent) => (
            None,
            String::new(),
            format!(
                "{} is not a stage of the play pipeline; reconcile does not know its event",
                play.stage
            ),
            None,
        ),
        Decision::CannotTell(CannotTell::Unlabelled) => (
            None,
            String::new(),
            "the play has no task-id or repository label".into(),
            None,
        ),
    };
    PlayReport {
        workflow: play.workflow.clone(),
        stage: play.stage.name().to_string(),
        task_id: play.task_id.clone(),
        repository: play.repository_name.clone(),
        waiting_since: play.since,
        pull_request,
        github,
        action: Action::None,
        detail,
        delivery_id,
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
            .filter(|play| play.stage == stage.name() && !play.action.recovered())
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
                    play.action.text(),
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
