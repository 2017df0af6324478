use clap::Args;
use jiff::Timestamp;
use kube::api::ListParams;

use super::{Context, Settings, SubjectArgs};
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
  stagectl get play-task-42-x7k2p -o yaml";

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
