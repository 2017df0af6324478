//! The contention figure of `make bench`: many play workflows, a controller-like writer updating
//! each one's status many times a second, and every stage transition of every workflow started at
//! once, each workflow walking its stages in order. The same run is made for each peer (stagectl,
//! the kubectl script) by bench/run; this program drives one peer and prints one JSON object.
//!
//!   contention --namespace NS --manifest examples/play-workflow.yaml --audit-log PATH \
//!     --peer stagectl --user-agent stagectl/ -- COMMAND... ({workflow} and {stage} are replaced)
//!
//! The writer behaves as Argo's controller does with a Workflow: it updates the whole object
//! (status and its own phase label) with the resourceVersion it last read, and re-reads and tries
//! again on a conflict. A peer's command that fails is run again, as a step's retryStrategy would,
//! up to --attempts times; each new run is a retry, a transition still failing after that is a
//! failure. Requests per transition come from the API server's audit log, by user agent, so a
//! peer's own retries inside one run are counted too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use tokio::task::JoinSet;

const STAGES: [&str; 4] = [
    "waiting-pr-created",
    "waiting-ready-for-qa",
    "waiting-pr-approved",
    "completed",
];

struct Options {
    namespace: String,
    manifest: PathBuf,
    audit_log: PathBuf,
    peer: String,
    user_agent: String,
    workflows: usize,
    writes_per_second: u64,
    attempts: u32,
    command: Vec<String>,
}

fn options() -> Result<Options> {
    // `cargo bench` adds --bench to every bench target's arguments, after ours.
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--bench");
    let mut named = BTreeMap::new();
    let mut command = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--" {
            command.extend(args.by_ref());
            break;
        }
        let Some(name) = arg.strip_prefix("--") else {
            bail!("unexpected argument {arg}; see the usage at the top of bench/contention.rs");
        };
        let value = args
            .next()
            .with_context(|| format!("--{name} needs a value"))?;
        named.insert(name.to_string(), value);
    }
    let mut take = |name: &str| {
        named
            .remove(name)
            .with_context(|| format!("--{name} is required"))
    };
    let options = Options {
        namespace: take("namespace")?,
        manifest: take("manifest")?.into(),
        audit_log: take("audit-log")?.into(),
        peer: take("peer")?,
        user_agent: take("user-agent")?,
        workflows: named.remove("workflows").map_or(Ok(50), |v| v.parse())?,
        writes_per_second: named
            .remove("writes-per-second")
            .map_or(Ok(20), |v| v.parse())?,
        attempts: named.remove("attempts").map_or(Ok(5), |v| v.parse())?,
        command,
    };
    if let Some(name) = named.keys().next() {
        bail!("unknown option --{name}");
    }
    if options.command.is_empty() {
        bail!("give the peer's command after --");
    }
    Ok(options)
}

#[derive(Default)]
struct Counters {
    writer_writes: AtomicU64,
    writer_conflicts: AtomicU64,
    transitions: AtomicU64,
    runs: AtomicU64,
    retries: AtomicU64,
    failures: AtomicU64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = Arc::new(options()?);
    let client = kube::Client::try_default().await?;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "argoproj.io",
        "v1alpha1",
        "Workflow",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(client, &options.namespace, &resource);

    let manifest: DynamicObject =
        serde_yaml::from_str(&std::fs::read_to_string(&options.manifest)?)?;
    let mut names = Vec::new();
    for index in 0..options.workflows {
        let mut workflow = manifest.clone();
        let name = format!("contention-{index}");
        workflow.metadata.generate_name = None;
        workflow.metadata.name = Some(name.clone());
        workflow.data["status"] = running_status(&name, 0);
        api.create(&PostParams::default(), &workflow).await?;
        names.push(name);
    }

    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = JoinSet::new();
    for name in &names {
        writers.spawn(write_like_a_controller(
            api.clone(),
            name.clone(),
            options.writes_per_second,
            stop.clone(),
            counters.clone(),
        ));
    }
    // Transitions start once every writer is busy.
    while counters.writer_writes.load(Ordering::Relaxed) < 3 * names.len() as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let audit_offset = std::fs::metadata(&options.audit_log)?.len();
    let writes_before = counters.writer_writes.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut walks = JoinSet::new();
    for name in &names {
        walks.spawn(walk_the_stages(
            options.clone(),
            name.clone(),
            counters.clone(),
        ));
    }
    while let Some(walk) = walks.join_next().await {
        walk??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let writes_during = counters.writer_writes.load(Ordering::Relaxed) - writes_before;
    stop.store(true, Ordering::Relaxed);
    while let Some(writer) = writers.join_next().await {
        writer??;
    }

    let requests = peer_requests(&options, audit_offset)?;
    let mut not_completed = 0;
    for name in &names {
        let workflow = api.get(name).await?;
        let stage = workflow
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("current-stage"));
        if stage.map(String::as_str) != Some("completed") {
            not_completed += 1;
        }
    }
    let transitions = counters.transitions.load(Ordering::Relaxed);
    let runs = counters.runs.load(Ordering::Relaxed);
    println!(
        "{}",
        json!({
            "peer": options.peer,
            "workflows": names.len(),
            "writes_per_second_per_workflow_target": options.writes_per_second,
            "writer_writes_per_second": writes_during as f64 / elapsed,
            "writer_conflicts": counters.writer_conflicts.load(Ordering::Relaxed),
            "attempts_allowed": options.attempts,
            "transitions_attempted": names.len() * STAGES.len(),
            "transitions_completed": transitions,
            "seconds": elapsed,
            "transitions_per_second": transitions as f64 / elapsed,
            "runs": runs,
            "retries": counters.retries.load(Ordering::Relaxed),
            "failures": counters.failures.load(Ordering::Relaxed),
            "workflows_not_completed": not_completed,
            "requests": requests,
            "requests_per_run": requests as f64 / runs.max(1) as f64,
            "requests_per_completed_transition": (transitions > 0).then(|| requests as f64 / transitions as f64),
        })
    );
    Ok(())
}

/// A status of the size and shape the controller keeps while a play runs.
fn running_status(name: &str, tick: u64) -> serde_json::Value {
    let nodes: serde_json::Map<_, _> = (0..8)
        .map(|n| {
            let id = format!("{name}-{n}");
            (id.clone(), json!({
                "id": id, "name": format!("{name}.step-{n}"), "displayName": format!("step-{n}"),
                "type": "Pod", "phase": "Succeeded", "templateName": "agent",
                "startedAt": "2026-11-24T10:00:00Z", "finishedAt": "2026-11-24T10:01:00Z",
                "progress": "1/1", "outputs": {"parameters": [{"name": "skip-wait", "value": "false"}]},
            }))
        })
        .collect();
    json!({"phase": "Running", "startedAt": "2026-11-24T10:00:00Z", "progress": format!("{tick}/8"),
           "message": format!("tick {tick}"), "nodes": nodes})
}

async fn write_like_a_controller(
    api: Api<DynamicObject>,
    name: String,
    writes_per_second: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> Result<()> {
    let mut interval = tokio::time::interval(Duration::from_millis(1000 / writes_per_second));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tick = 0;
    let mut object = api.get(&name).await?;
    while !stop.load(Ordering::Relaxed) {
        interval.tick().await;
        tick += 1;
        loop {
            object
                .metadata
                .labels
                .get_or_insert_default()
                .insert("workflows.argoproj.io/phase".into(), "Running".into());
            object.data["status"] = running_status(&name, tick);
            match api.replace(&name, &PostParams::default(), &object).await {
                Ok(written) => {
                    object = written;
                    counters.writer_writes.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    counters.writer_conflicts.fetch_add(1, Ordering::Relaxed);
                    object = api.get(&name).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn walk_the_stages(
    options: Arc<Options>,
    name: String,
    counters: Arc<Counters>,
) -> Result<()> {
    for stage in STAGES {
        let command: Vec<String> = options
            .command
            .iter()
            .map(|part| part.replace("{workflow}", &name).replace("{stage}", stage))
            .collect();
        let mut done = false;
        for attempt in 1..=options.attempts {
            counters.runs.fetch_add(1, Ordering::Relaxed);
            if attempt > 1 {
                counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            let status = tokio::process::Command::new(&command[0])
                .args(&command[1..])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .await?;
            if status.success() {
                done = true;
                break;
            }
        }
        if !done {
            // The walk of this workflow stops: its later stages cannot follow a missing one.
            counters.failures.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        counters.transitions.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Requests to the namespace's Workflows made by the peer since the transitions started.
fn peer_requests(options: &Options, offset: u64) -> Result<u64> {
    use std::io::{BufRead, Seek};
    let mut log = std::fs::File::open(&options.audit_log)?;
    log.seek(std::io::SeekFrom::Start(offset))?;
    let mut requests = 0;
    for line in std::io::BufReader::new(log).lines() {
        let entry: serde_json::Value = serde_json::from_str(&line?)?;
        if entry["objectRef"]["namespace"] == options.namespace.as_str()
            && entry["objectRef"]["resource"] == "workflows"
            && entry["stage"] != "RequestReceived"
            && entry["userAgent"]
                .as_str()
                .is_some_and(|agent| agent.starts_with(&options.user_agent))
        {
            requests += 1;
        }
    }
    Ok(requests)
}
