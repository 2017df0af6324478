use std::collections::HashMap;

use clap::Args;
use jiff::Timestamp;

use super::Subject;
use crate::cluster::{Change, Cluster, Scope, View, selector as equalities};
use crate::core::labels::{self, Repository};
use crate::core::record::StageRecord;
use crate::error::Result;
use crate::output;
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
    let format = settings.output;
    if args.watch {
        let scope = Scope {
            namespace: (named.is_some() || !args.all_namespaces)
                .then_some(cluster.namespace.as_str()),
            labels: Some(&selector),
            name: named.as_ref().map(|subject| subject.name.as_str()),
        };
        return watch(cluster, format, scope, args.all_namespaces).await;
    }
    if let Some(subject) = named {
        let observed = cluster
            .read(
                &cluster.namespace,
                &subject.name,
                View::Metadata,
                cluster.budget(),
            )
            .await?;
        let record = StageRecord::from_meta(&observed.meta);
        output::emit(&output::records(&[record], format, false, true, now));
        return Ok(());
    }
    let namespace = (!args.all_namespaces).then_some(cluster.namespace.as_str());
    let mut records: Vec<StageRecord> = cluster
        .list_pages(namespace, &selector, args.chunk_size)
        .await?
        .iter()
        .map(StageRecord::from_meta)
        .collect();
    if let Some(limit) = args.waiting_longer_than {
        let before =
            now - jiff::SignedDuration::try_from(limit).unwrap_or(jiff::SignedDuration::MAX);
        records.retain(|record| {
            record
                .waiting_since(&settings.pipeline)
                .is_some_and(|since| since < before)
        });
    }
    if records.is_empty() && matches!(format, output::Format::Table | output::Format::Wide) {
        if let Some(limit) = args.waiting_longer_than {
            eprintln!(
                "No plays waiting longer than {:#}.",
                jiff::SignedDuration::try_from(limit).unwrap_or_default()
            );
            return Ok(());
        }
        match namespace {
            Some(ns) => eprintln!("No play workflows found in namespace {ns}."),
            None => eprintln!("No play workflows found."),
        }
        return Ok(());
    }
    output::emit(&output::records(
        &records,
        format,
        args.all_namespaces,
        false,
        now,
    ));
    Ok(())
}

/// Plays only, narrowed by the validated task and repository, then by the caller's own selector
/// (which the API server parses, as it does kubectl's).
fn selector(args: &GetArgs) -> Result<String> {
    let mut equal = vec![(labels::WORKFLOW_TYPE, labels::PLAY.to_string())];
    if let Some(task_id) = &args.task_id {
        equal.push((
            labels::TASK_ID,
            labels::validate_task_id(task_id)?.to_string(),
        ));
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
    format: output::Format,
    scope: Scope<'_>,
    all_namespaces: bool,
) -> Result<()> {
    let wide = format == output::Format::Wide;
    let mut shown: HashMap<(String, String), String> = HashMap::new();
    let mut initial = Vec::new();
    let mut listed = false;
    let mut widths = Vec::new();
    let mut header: Option<Vec<String>> = None;
    let mut watch = cluster.watch(scope);
    while let Some(change) = watch.next(cluster).await {
        let now = Timestamp::now();
        let changed: Vec<StageRecord> = match change? {
            Change::Relist => {
                initial.clear();
                continue;
            }
            Change::Item(meta) => {
                initial.push(StageRecord::from_meta(&meta));
                continue;
            }
            Change::Listed if !listed => {
                listed = true;
                let records = std::mem::take(&mut initial);
                for record in &records {
                    shown.insert(key(record), shown_state(record));
                }
                match format {
                    output::Format::Table | output::Format::Wide => {
                        let mut rows = output::table_rows(&records, wide, all_namespaces, now);
                        // As kubectl does, an empty list prints nothing yet: the header comes
                        // with the first row.
                        if records.is_empty() {
                            header = rows.pop();
                            continue;
                        }
                        output::emit(&output::in_columns(&rows, &mut widths));
                        continue;
                    }
                    _ => records,
                }
            }
            // A re-list after a long disconnection: whatever changed meanwhile.
            Change::Listed => std::mem::take(&mut initial)
                .into_iter()
                .filter(|record| shown.get(&key(record)) != Some(&shown_state(record)))
                .collect(),
            Change::Applied(meta) | Change::Deleted(meta) => {
                let record = StageRecord::from_meta(&meta);
                if shown.get(&key(&record)) == Some(&shown_state(&record)) {
                    continue;
                }
                vec![record]
            }
        };
        for record in &changed {
            shown.insert(key(record), shown_state(record));
        }
        output::emit(&match format {
            output::Format::Table | output::Format::Wide => {
                let mut rows = output::table_rows(&changed, wide, all_namespaces, now);
                if header.take().is_none() {
                    rows.remove(0);
                }
                output::in_columns(&rows, &mut widths)
            }
            output::Format::Name => changed
                .iter()
                .map(|r| output::resource_name(&r.name) + "\n")
                .collect::<String>(),
            format => changed
                .iter()
                .map(|record| match format {
                    output::Format::Yaml => format!("---\n{}", output::render(record, format)),
                    _ => output::render(record, format),
                })
                .collect(),
        });
    }
    Ok(())
}

fn key(record: &StageRecord) -> (String, String) {
    (record.namespace.clone(), record.name.clone())
}

/// What `get` shows of a play, but its ages: a change of this is worth a line.
fn shown_state(record: &StageRecord) -> String {
    format!(
        "{:?} {:?} {:?} {}",
        record.stage,
        record.phase,
        record.updated_at,
        record.history.len()
    )
}
