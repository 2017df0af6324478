use std::collections::HashMap;

use clap::Args;
use jiff::Timestamp;

use super::Subject;
use crate::cluster::{Change, Cluster, Scope, View, selector as equalities};
use crate::core::labels::{self, Repository, TaskId};
use crate::core::pipeline::Pipelines;
use crate::core::record::StageRecord;
use crate::core::stage::{Pipeline, Stage};
use crate::error::Result;
use crate::output::{self, RecordView};
use crate::settings::{Settings, parse_duration};

pub const AFTER_HELP: &str = "\
Examples:
  # Every play in the namespace, with its stage:
  stagectl get -n argo

  # The plays of one task, across namespaces:
  stagectl get --task-id 42 -A

  # One play's full record, history included:
  stagectl get play-task-42-x7k2p -o yaml

  # Follow the plays of a task as they move (Ctrl-C to stop):
  stagectl get --task-id 42 --watch

  # The plays that have waited for their GitHub event longer than 2 hours (a lost webhook?
  # stagectl reconcile delivers what GitHub says happened):
  stagectl get -A --waiting-longer-than 2h";

#[derive(Debug, Args)]
pub struct GetArgs {
    /// One Workflow; default: every play workflow that matches the filters.
    pub name: Option<String>,
    /// Only the plays of this task.
    #[arg(long)]
    pub task_id: Option<String>,
    /// Only the plays of this repository, OWNER/REPO.
    #[arg(long)]
    pub repository: Option<String>,
    /// A further label selector, as kubectl takes it.
    #[arg(long, short = 'l')]
    pub selector: Option<String>,
    /// Across all namespaces.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
    /// Workflows fetched per request: large lists come in pages rather than one huge response.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_size: u32,
    /// After the list, print each play again whenever its stage, phase or history changes,
    /// until interrupted, as `kubectl get --watch` does.
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// Only the plays that wait at a waiting stage, and have for longer than this (30m, 2h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with_all = ["watch", "name"])]
    pub waiting_longer_than: Option<std::time::Duration>,
}

pub async fn run(settings: &Settings, args: &GetArgs) -> Result<()> {
    let now = Timestamp::now();
    let named = args
        .name
        .as_deref()
        .map(|name| Subject::validate(name, None, None))
        .transpose()?;
    let selector = selector(args)?;
    let cluster = &settings.connect().await?;
    let view = RecordView {
        format: settings.output,
        namespace_column: args.all_namespaces,
        now,
    };
    if args.watch {
        let scope = Scope {
            namespace: (named.is_some() || !args.all_namespaces)
                .then_some(cluster.namespace.as_str()),
            labels: Some(&selector),
            name: named.as_ref().map(|subject| subject.name.as_str()),
        };
        return watch(cluster, scope, view, &settings.pipeline).await;
    }
    if let Some(subject) = named {
        let observed = cluster
            .read(
                subject.in_namespace(&cluster.namespace),
                View::Metadata,
                cluster.budget(),
            )
            .await?;
        let pipeline = Pipelines::new(&settings.pipeline).of_or_fallback(&observed.meta);
        output::emit(&view.one(&StageRecord::from_meta(&observed.meta, pipeline)));
        return Ok(());
    }
    let namespace = (!args.all_namespaces).then_some(cluster.namespace.as_str());
    let mut pipelines = Pipelines::new(&settings.pipeline);
    let mut records: Vec<StageRecord> = cluster
        .list_pages(namespace, &selector, args.chunk_size, |meta| {
            StageRecord::from_meta(meta, pipelines.of_or_fallback(meta))
        })
        .await?;
    if let Some(limit) = args.waiting_longer_than {
        let before = jiff::SignedDuration::try_from(limit)
            .ok()
            .and_then(|limit| now.checked_sub(limit).ok())
            .unwrap_or(Timestamp::MIN);
        records.retain(|record| record.waiting_since().is_some_and(|since| since < before));
    }
    if records.is_empty() && view.is_table() {
        if let Some(limit) = args.waiting_longer_than {
            output::note(&format!(
                "No plays waiting longer than {:#}.",
                jiff::SignedDuration::try_from(limit).unwrap_or_default()
            ));
            return Ok(());
        }
        match namespace {
            Some(ns) => output::note(&format!("No play workflows found in namespace {ns}.")),
            None => output::note("No play workflows found."),
        }
        return Ok(());
    }
    output::emit(&view.list(&records));
    Ok(())
}

/// Plays only, narrowed by the validated task and repository, then by the caller's own selector
/// (which the API server parses, as it does kubectl's).
fn selector(args: &GetArgs) -> Result<String> {
    let mut equal = vec![(labels::WORKFLOW_TYPE, labels::PLAY.to_string())];
    if let Some(task_id) = &args.task_id {
        equal.push((labels::TASK_ID, TaskId::parse(task_id)?.to_string()));
    }
    if let Some(repository) = &args.repository {
        equal.push((
            labels::REPOSITORY,
            Repository::parse(repository)?.label_value(),
        ));
    }
    let mut selector = equalities(&equal).to_string();
    if let Some(extra) = args.selector.as_deref().filter(|s| !s.trim().is_empty()) {
        selector.push(',');
        selector.push_str(extra);
    }
    Ok(selector)
}

/// `get --watch`: the list as a table (or documents), then each play again when what `get`
/// shows of it changes; a Workflow changes far more often (its status), and those changes are
/// not printed. Runs until interrupted; a dropped connection is resumed with backoff.
async fn watch(
    cluster: &Cluster,
    scope: Scope<'_>,
    view: RecordView,
    pipeline: &Pipeline,
) -> Result<()> {
    let mut printer = WatchPrinter::new(view, pipeline.clone());
    let mut watch = cluster.watch(scope);
    while let Some(change) = watch.next(cluster).await {
        if let Some(text) = printer.print(change?, Timestamp::now())
            && output::emit(&text) == output::Printed::ReaderGone
        {
            break;
        }
    }
    Ok(())
}

/// What `get --watch` prints, change by change: it remembers what it has shown of each play,
/// and keeps the table's columns from one batch to the next.
struct WatchPrinter {
    view: RecordView,
    pipelines: Pipelines,
    shown: HashMap<(String, String), ShownState>,
    /// The list being received, until it is complete.
    listing: Vec<StageRecord>,
    listed: bool,
    widths: Vec<usize>,
    /// As kubectl does, an empty first list prints nothing: its header comes with the first row.
    header_not_printed: Option<Vec<String>>,
}

impl WatchPrinter {
    fn new(view: RecordView, pipeline: Pipeline) -> Self {
        WatchPrinter {
            view,
            pipelines: Pipelines::new(&pipeline),
            shown: HashMap::new(),
            listing: Vec::new(),
            listed: false,
            widths: Vec::new(),
            header_not_printed: None,
        }
    }

    fn print(&mut self, change: Change, now: Timestamp) -> Option<String> {
        self.view.now = now;
        let changed: Vec<StageRecord> = match change {
            Change::Relist => {
                self.listing.clear();
                return None;
            }
            Change::Item(meta) => {
                self.listing.push(StageRecord::from_meta(
                    &meta,
                    self.pipelines.of_or_fallback(&meta),
                ));
                return None;
            }
            Change::Listed if !self.listed => {
                self.listed = true;
                let records = std::mem::take(&mut self.listing);
                self.remember(&records);
                return self.first_list(&records);
            }
            // A re-list after a long disconnection: whatever changed meanwhile.
            Change::Listed => std::mem::take(&mut self.listing)
                .into_iter()
                .filter(|record| !self.is_shown(record))
                .collect(),
            Change::Applied(meta) | Change::Deleted(meta) => {
                let record = StageRecord::from_meta(&meta, self.pipelines.of_or_fallback(&meta));
                if self.is_shown(&record) {
                    return None;
                }
                vec![record]
            }
        };
        self.remember(&changed);
        Some(self.more(&changed))
    }

    fn first_list(&mut self, records: &[StageRecord]) -> Option<String> {
        if !self.view.is_table() {
            return Some(self.more(records));
        }
        let mut rows = self.view.table_rows(records);
        if records.is_empty() {
            self.header_not_printed = rows.pop();
            return None;
        }
        Some(output::in_columns(&rows, &mut self.widths))
    }

    /// Plays after the first list: rows under the table's header, or one document each.
    fn more(&mut self, records: &[StageRecord]) -> String {
        match self.view.format {
            output::Format::Table | output::Format::Wide => {
                let mut rows = self.view.table_rows(records);
                if self.header_not_printed.take().is_none() {
                    rows.remove(0);
                }
                output::in_columns(&rows, &mut self.widths)
            }
            output::Format::Name => output::names(records),
            format => records
                .iter()
                .map(|record| match format {
                    output::Format::Yaml => format!("---\n{}", output::render(record, format)),
                    _ => output::render(record, format),
                })
                .collect(),
        }
    }

    fn remember(&mut self, records: &[StageRecord]) {
        for record in records {
            self.shown.insert(key(record), shown_state(record));
        }
    }

    fn is_shown(&self, record: &StageRecord) -> bool {
        self.shown.get(&key(record)) == Some(&shown_state(record))
    }
}

fn key(record: &StageRecord) -> (String, String) {
    (record.namespace.clone(), record.name.clone())
}

/// What `get` shows of a play, but its ages: a change of this is worth a line.
#[derive(Debug, PartialEq, Eq)]
struct ShownState {
    stage: Option<Stage>,
    pass: u32,
    phase: Option<String>,
    updated_at: Option<Timestamp>,
    history: usize,
}

fn shown_state(record: &StageRecord) -> ShownState {
    ShownState {
        stage: record.stage.clone(),
        pass: record.pass,
        phase: record.phase.clone(),
        updated_at: record.updated_at,
        history: record.history.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn play(name: &str, stage: &str, phase: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("argo".into()),
            labels: Some(
                [
                    (labels::CURRENT_STAGE, stage),
                    (labels::TASK_ID, "7"),
                    (labels::ARGO_PHASE, phase),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ),
            ..ObjectMeta::default()
        }
    }

    fn printer(format: output::Format) -> WatchPrinter {
        WatchPrinter::new(
            RecordView {
                format,
                namespace_column: false,
                now: Timestamp::UNIX_EPOCH,
            },
            Pipeline::default(),
        )
    }

    #[test]
    fn an_empty_first_list_prints_its_header_with_the_first_row() {
        let mut printer = printer(output::Format::Table);
        let now = Timestamp::UNIX_EPOCH;
        assert_eq!(printer.print(Change::Relist, now), None);
        assert_eq!(printer.print(Change::Listed, now), None);
        let first = printer
            .print(Change::Applied(play("play-a", "pending", "Running")), now)
            .unwrap();
        assert_eq!(first.lines().count(), 2, "{first}");
        assert!(first.starts_with("NAME"), "{first}");
        let second = printer
            .print(Change::Applied(play("play-b", "pending", "Running")), now)
            .unwrap();
        assert_eq!(second.lines().count(), 1, "no second header: {second}");
    }

    #[test]
    fn only_changes_that_get_shows_are_printed_again() {
        let mut printer = printer(output::Format::Name);
        let now = Timestamp::UNIX_EPOCH;
        printer.print(Change::Relist, now);
        printer.print(Change::Item(play("play-a", "pending", "Running")), now);
        assert_eq!(
            printer.print(Change::Listed, now).as_deref(),
            Some("workflow.argoproj.io/play-a\n")
        );
        // The controller writes the status far more often than the stage changes.
        let same = play("play-a", "pending", "Running");
        assert_eq!(printer.print(Change::Applied(same), now), None);
        let moved = play("play-a", "waiting-pr-created", "Running");
        assert!(printer.print(Change::Applied(moved.clone()), now).is_some());

        // A re-list after a disconnection prints only what changed meanwhile.
        printer.print(Change::Relist, now);
        printer.print(Change::Item(moved), now);
        printer.print(Change::Item(play("play-b", "pending", "Running")), now);
        assert_eq!(
            printer.print(Change::Listed, now).as_deref(),
            Some("workflow.argoproj.io/play-b\n")
        );
    }
}
