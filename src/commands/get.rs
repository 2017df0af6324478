use std::collections::HashMap;

use clap::Args;
use futures::TryStreamExt;
use jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};

use super::{Context, Settings, SubjectArgs};
use crate::cluster::Target;
use crate::error::Result;
use crate::labels::{self, Repository};
use crate::output;
use crate::record::StageRecord;

pub const AFTER_HELP: &str = "\
Examples:
  # Every play in the namespace, with its stage:
  stagectl get -n argo

  # The plays of one task, across namespaces:
  stagectl get --task-id 42 -A

  # One play's full record, history included:
  stagectl get play-task-42-x7k2p -o yaml

  # Follow the plays of a task as they move (Ctrl-C to stop):
  stagectl get --task-id 42 --watch";

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
}

pub async fn run(settings: &Settings, args: &GetArgs) -> Result<()> {
    let now = Timestamp::now();
    let named = args
        .name
        .as_deref()
        .map(|name| SubjectArgs::validate(name, None, None))
        .transpose()?;
    let selector = selector(args)?;
    let ctx: &Context = &settings.connect().await?;
    if args.watch {
        let mut config = watcher::Config::default().labels(&selector);
        let namespace = match named {
            Some(subject) => {
                let subject = subject.in_namespace_of(ctx);
                config = config.fields(&format!("metadata.name={}", subject.name));
                Some(subject.namespace)
            }
            None => (!args.all_namespaces).then(|| ctx.cluster.namespace.clone()),
        };
        return watch(ctx, namespace.as_deref(), config, args.all_namespaces).await;
    }
    if let Some(subject) = named {
        let subject = subject.in_namespace_of(ctx);
        let meta = ctx
            .cluster
            .get_meta(&subject.namespace, &subject.name)
            .await?;
        let record = StageRecord::from_meta(&meta.metadata);
        output::emit(&output::records(&[record], ctx.output, false, true, now));
        return Ok(());
    }
    let namespace = (!args.all_namespaces).then_some(ctx.cluster.namespace.as_str());
    let mut records = Vec::new();
    let mut params = ListParams::default()
        .labels(&selector)
        .limit(args.chunk_size);
    loop {
        let page = ctx.cluster.list_meta(namespace, &params).await?;
        records.extend(
            page.items
                .iter()
                .map(|item| StageRecord::from_meta(&item.metadata)),
        );
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(token.as_str()),
            None => break,
        }
    }
    if records.is_empty() && matches!(ctx.output, output::Format::Table | output::Format::Wide) {
        match namespace {
            Some(ns) => eprintln!("No play workflows found in namespace {ns}."),
            None => eprintln!("No play workflows found."),
        }
        return Ok(());
    }
    output::emit(&output::records(
        &records,
        ctx.output,
        args.all_namespaces,
        false,
        now,
    ));
    Ok(())
}

/// Plays only, narrowed by the validated task and repository, then by the caller's own selector.
fn selector(args: &GetArgs) -> Result<String> {
    let mut parts = vec![format!("{}={}", labels::WORKFLOW_TYPE, labels::PLAY)];
    if let Some(task_id) = &args.task_id {
        parts.push(format!(
            "{}={}",
            labels::TASK_ID,
            labels::validate_task_id(task_id)?
        ));
    }
    if let Some(repository) = &args.repository {
        parts.push(format!(
            "{}={}",
            labels::REPOSITORY,
            Repository::parse(repository)?.label_value()
        ));
    }
    if let Some(extra) = args.selector.as_deref().filter(|s| !s.trim().is_empty()) {
        parts.push(extra.to_string());
    }
    Ok(parts.join(","))
}

/// `get --watch`: the list as a table (or documents), then each play again when what `get`
/// shows of it changes; a Workflow changes far more often (its status), and those changes are
/// not printed. Runs until interrupted; a dropped connection is resumed with backoff.
async fn watch(
    ctx: &Context,
    namespace: Option<&str>,
    config: watcher::Config,
    all_namespaces: bool,
) -> Result<()> {
    let wide = ctx.output == output::Format::Wide;
    let mut shown: HashMap<(String, String), String> = HashMap::new();
    let mut initial = Vec::new();
    let mut listed = false;
    let mut widths = Vec::new();
    let mut header: Option<Vec<String>> = None;
    let stream = ctx.cluster.watch_meta(namespace, config).default_backoff();
    futures::pin_mut!(stream);
    loop {
        let event = match stream.try_next().await {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(()),
            // Before the first list, a lasting failure is the answer (no access, no CRD); a
            // transient one (the server starting, overloaded) is tried again until --timeout.
            // After it, a watch that broke is resumed.
            Err(err) if !listed => {
                let target = Target {
                    namespace: namespace.map(str::to_string),
                    name: None,
                };
                match err {
                    watcher::Error::InitialListFailed(err)
                    | watcher::Error::WatchStartFailed(err)
                    | watcher::Error::WatchFailed(err) => {
                        if crate::cluster::is_transient(&err) && ctx.cluster.before_deadline() {
                            tracing::debug!(error = %err, "watch not started yet; trying again");
                            continue;
                        }
                        return Err(ctx.cluster.classify(err, &target, "watch"));
                    }
                    other => {
                        return Err(anyhow::anyhow!("cannot watch play workflows: {other}").into());
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "watch interrupted; resuming");
                continue;
            }
        };
        let now = Timestamp::now();
        let changed: Vec<StageRecord> = match event {
            watcher::Event::Init => {
                initial.clear();
                continue;
            }
            watcher::Event::InitApply(meta) => {
                initial.push(StageRecord::from_meta(&meta.metadata));
                continue;
            }
            watcher::Event::InitDone if !listed => {
                listed = true;
                let records = std::mem::take(&mut initial);
                for record in &records {
                    shown.insert(key(record), shown_state(record));
                }
                match ctx.output {
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
            watcher::Event::InitDone => std::mem::take(&mut initial)
                .into_iter()
                .filter(|record| shown.get(&key(record)) != Some(&shown_state(record)))
                .collect(),
            watcher::Event::Apply(meta) | watcher::Event::Delete(meta) => {
                let record = StageRecord::from_meta(&meta.metadata);
                if shown.get(&key(&record)) == Some(&shown_state(&record)) {
                    continue;
                }
                vec![record]
            }
        };
        for record in &changed {
            shown.insert(key(record), shown_state(record));
        }
        output::emit(&match ctx.output {
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
