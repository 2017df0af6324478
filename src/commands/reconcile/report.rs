//! What a run of reconcile says: per play, what GitHub shows and what was done, as a table,
//! JSON or YAML, and its counts as files for the CronWorkflow's outputs and metrics.

use jiff::Timestamp;
use serde::{Serialize, Serializer};

use crate::core::event::Awaited;
use crate::core::reconcile::{CannotTell, Decision, WaitingPlay, outputs};
use crate::core::resume::Outcome;
use crate::error::{Error, Result};
use crate::output::{self, Format};
use crate::settings::Settings;

/// What reconcile found and did for one waiting play.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PlayReport {
    pub(super) workflow: String,
    pub(super) stage: String,
    pub(super) task_id: String,
    pub(super) repository: String,
    /// Since when the play waits: the change that entered the stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) waiting_since: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) pull_request: Option<u64>,
    /// What GitHub says.
    pub(super) github: String,
    pub(super) action: Action,
    pub(super) detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) delivery_id: Option<String>,
}

/// What the run did for a play; written delivered-resumed, delivered-latched,
/// delivered-sent-back, delivered-failed, delivered-noop, would-deliver, none or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
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

    /// A wait this run decided (released, sent the play back at, or failed it at): a webhook
    /// that was lost.
    pub(super) fn recovered(self) -> bool {
        matches!(
            self,
            Action::Delivered(Outcome::Resumed | Outcome::SentBack | Outcome::Failed)
        )
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Report {
    pub(super) namespace: String,
    pub(super) dry_run: bool,
    pub(super) plays: Vec<PlayReport>,
    /// Waits this run released: each one a webhook that was lost.
    pub(super) recovered: usize,
    pub(super) github: crate::github::Cost,
}

/// What GitHub shows of a pull request for the event a play awaits, in a few words.
fn shown(awaited: &Awaited, happened: bool) -> String {
    let not = if happened { "" } else { "not " };
    match awaited {
        Awaited::PullRequestOpened | Awaited::PullRequestPushed => format!("{not}open"),
        Awaited::LabelAdded { label } => format!("{not}labelled {label}"),
        Awaited::ReviewApproved => format!("{not}approved"),
        Awaited::ReviewChangesRequested => format!("{not}sent back by a review"),
        Awaited::PullRequestMerged => format!("{not}merged"),
        Awaited::CheckSuiteCompleted { conclusion } => {
            let no = if happened { "" } else { "no " };
            format!("{no}check suite {conclusion} on its head")
        }
        Awaited::WorkflowRunCompleted {
            conclusion,
            workflow,
        } => {
            let no = if happened { "" } else { "no " };
            let name = workflow
                .as_deref()
                .map(|n| format!("{n} "))
                .unwrap_or_default();
            format!("{no}workflow run {name}{conclusion} on its head")
        }
    }
}

/// The report of a play before any delivery: what GitHub says, in words.
pub(super) fn report(play: &WaitingPlay, decision: &Decision) -> PlayReport {
    let (pull_request, github, detail, delivery_id) = match decision {
        Decision::Deliver(delivery) => {
            let number = delivery.pull;
            let github = format!("#{number} {}", shown(&delivery.awaited, true));
            (
                Some(number),
                github,
                String::new(),
                Some(delivery.delivery_id.clone()),
            )
        }
        Decision::NotYet { pull: None, .. } => (
            None,
            "no open pull request, none merged since the play began".into(),
            String::new(),
            None,
        ),
        Decision::NotYet {
            awaited,
            pull: Some(number),
        } => {
            let github = format!("#{number} {}", shown(awaited, false));
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
                "{} is a stage of a bare --stages list, which names no event; \
                 give reconcile the pipeline's definition (--pipeline)",
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
        task_id: play
            .task_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
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
pub(super) fn write_outputs(
    dir: &std::path::Path,
    settings: &Settings,
    report: &Report,
) -> Result<()> {
    let now = Timestamp::now();
    let mut files = vec![(outputs::RECOVERED.to_string(), report.recovered.to_string())];
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
        files.push((outputs::waiting(&stage), here.len().to_string()));
        files.push((outputs::oldest_wait_seconds(&stage), oldest.to_string()));
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

pub(super) fn render(report: &Report, format: Format) -> String {
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
