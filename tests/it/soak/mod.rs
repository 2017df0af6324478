//! A seeded soak of the real event path under overlapping faults: plays under Argo's real
//! controller, their agents' webhooks through Argo Events' own EventSource, JetStream bus and
//! Sensors to `stagectl resume`, the reconcile CronWorkflow against the GitHub stand-in — while a
//! nemesis kills the API server, the controller, the EventSource, the Sensors and NATS, and
//! GitHub's API fails, several at once. Every random choice comes from one seed, printed first;
//! `make soak SEED=...` replays a run's scenario. The checker (checker.rs) then decides from the
//! API server's objects and audit log and the stand-in's record alone whether each wait was
//! released exactly once, by its own task's event.
//!
//! `make test` runs a short soak of a fixed and a random seed together; `make soak` the full one.

mod checker;
mod nemesis;
mod scenario;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};
use tokio::time::Instant;

use self::checker::{
    AlertCause, Change, Delivery, Facts, GitHubRequest, Millis, PlayObject, ReconcileRun,
    ResumeTimes, Verdict, Write,
};
use self::nemesis::{Nemesis, Processes};
use self::scenario::{REPOSITORIES, Scenario, Size, SoakPipeline};
use crate::e2e::{EVERY_MINUTE, Plays, RECONCILE_RUNS, play_workflow};
use crate::harness::{GitHubStandIn, Prometheus, repo_path};

const TOKEN: &str = "ghp_soak";
/// The reconcile CronWorkflow runs every minute in the soak.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(60);
/// The short soak's fixed seed: its eight faults kill the API server, the controller, NATS, the
/// EventSource and two Sensors, slow the API server down and reset GitHub's connections, one of
/// its webhooks is dropped and one of its agents fails (checked below), so every `make test`
/// meets each of them.
const FIXED_SEED: u64 = 0x5eed_0eda;

/// The short soak of `make test`, per seed.
const SHORT: Size = Size {
    plays: 6,
    duration: Duration::from_secs(40),
    faults_per_minute: 12.0,
};

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) if !text.is_empty() => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a valid value")),
        _ => default,
    }
}

#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn a_short_soak_of_a_fixed_and_a_random_seed_releases_each_wait_once_by_its_own_event() {
    soak(&[FIXED_SEED, random_seed()], SHORT, SoakPipeline::Play).await;
}

#[test]
fn the_fixed_seed_of_the_short_soak_meets_every_kind_of_process_fault() {
    use self::scenario::{FaultKind, Process, Timing};
    let scenario = Scenario::generate(&[FIXED_SEED], SHORT, SoakPipeline::Play);
    let kinds: Vec<FaultKind> = scenario.faults.iter().map(|f| f.kind).collect();
    for process in [
        Process::ApiServer,
        Process::Controller,
        Process::Nats,
        Process::EventSource,
    ] {
        assert!(kinds.contains(&FaultKind::Kill(process)), "{kinds:?}");
    }
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, FaultKind::Kill(Process::Sensor(_))))
    );
    assert!(kinds.iter().any(|k| matches!(k, FaultKind::GitHubReset(_))));
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, FaultKind::SlowApiServer(_)))
    );
    let agents = || scenario.plays.iter().flat_map(|p| p.agents.iter());
    assert!(agents().any(|a| a.timing == Timing::Dropped));
    assert!(agents().any(|a| a.exit != 0));
    // A play Tess sends back, and one she sends back in its last pass.
    let loops: Vec<u32> = scenario.plays.iter().map(|p| p.send_backs()).collect();
    assert!(loops.iter().any(|&n| n > 0), "{loops:?}");
}

#[tokio::test]
#[ignore = "the full soak, about 20 minutes: make soak"]
async fn full() {
    let seeds = seeds_or("SOAK_SEED", random_seed());
    let size = Size {
        plays: env_or("SOAK_PLAYS", 150),
        duration: Duration::from_secs(env_or("SOAK_DURATION_SECONDS", 1200)),
        faults_per_minute: env_or("SOAK_FAULTS_PER_MINUTE", 4.0),
    };
    let pipeline = std::env::var("SOAK_PIPELINE").unwrap_or_default();
    let pipeline = match pipeline.as_str() {
        "" => SoakPipeline::Play,
        name => SoakPipeline::parse(name)
            .unwrap_or_else(|| panic!("SOAK_PIPELINE={name:?}: use play or gated")),
    };
    soak(&seeds, size, pipeline).await;
}

/// `SOAK_SEED`: one seed, or several joined by commas, as a report's replay line gives them.
fn seeds_or(name: &str, default: u64) -> Vec<u64> {
    match std::env::var(name) {
        Ok(text) if !text.is_empty() => text
            .split(',')
            .map(|seed| {
                seed.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={text:?}: {seed:?} is not a seed"))
            })
            .collect(),
        _ => vec![default],
    }
}

fn seeds_text(seeds: &[u64]) -> String {
    let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
    seeds.join(",")
}

async fn soak(seeds: &[u64], size: Size, pipeline: SoakPipeline) {
    let scenario = Scenario::generate(seeds, size, pipeline);
    let seed = seeds_text(seeds);
    let replay = format!(
        "make soak SEED={seed} PLAYS={} DURATION={} FAULT_RATE={}{}",
        size.plays,
        size.duration.as_secs(),
        size.faults_per_minute,
        match pipeline {
            SoakPipeline::Play => String::new(),
            other => format!(" PIPELINE={}", other.name()),
        }
    );
    eprintln!(
        "soak: seed {seed}: {} plays over {}s, {} faults (replay: {replay})",
        scenario.plays.len(),
        size.duration.as_secs(),
        scenario.faults.len()
    );
    let namespace: Vec<String> = seeds.iter().map(|seed| format!("{seed:x}")).collect();
    let plays = Plays::alone_with(&format!("soak-{}", namespace.join("-")), pipeline.dir()).await;
    let github = GitHubStandIn::start().await;
    let repos: serde_json::Map<String, Value> = REPOSITORIES
        .iter()
        .map(|repo| (repo.to_string(), json!([])))
        .collect();
    github
        .set(json!({
            "tokens": [TOKEN],
            "rateLimit": {"limit": 5000, "remaining": 5000, "reset": 0},
            "repos": repos,
        }))
        .await;
    let nemesis = Nemesis::new(Processes {
        controlplane_dir: plays.argo.controlplane_dir.clone(),
        kubeconfig: plays.argo.kubeconfig.clone(),
        namespace: plays.ns.name.clone(),
        events_state: plays.events().state.clone(),
        stagectl: std::env::var_os("STAGECTL_STATIC_BINARY")
            .map(Into::into)
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_stagectl").into()),
        sensors: pipeline.sensors(),
        pipeline_dir: repo_path(pipeline.dir()),
    });
    nemesis.fresh_controller().await;
    let prometheus = Prometheus::start(&plays.argo.metrics_url).await;
    plays
        .install_reconcile_cron(&github, TOKEN, EVERY_MINUTE, 1000)
        .await;
    let names: Vec<String> = (0..scenario.plays.len())
        .map(|i| format!("play-{}-{i}", scenario.plays[i].task))
        .collect();
    let start = Instant::now();
    let stop = AtomicBool::new(false);
    let deadline = start + size.duration + Duration::from_secs(600).max(size.duration / 2);
    let run = async {
        tokio::join!(
            nemesis.inject(&scenario.faults, start, &github),
            submit_all(&plays, &scenario, &names, &github.url, start),
        );
        let finished = all_finished(&plays, &names, deadline).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        finished
    };
    let (finished, ()) = tokio::join!(run, nemesis.supervise(&stop));
    nemesis.heal().await;
    let took = start.elapsed();

    // The alerts of the whole run, once no reconcile run can add a cause and Prometheus has
    // seen the end; the causes are read after, so that none is missed.
    plays.stop_reconcile_cron().await;
    let seen_until = nemesis::now_millis();
    prometheus.caught_up(seen_until).await;
    let alerts_fired = alerts_fired(&prometheus, start.elapsed()).await;
    let facts = facts(&plays, &scenario, &names, &github).await;
    let log = nemesis.log();
    let verdict = checker::check(&Facts {
        fault_windows: log.windows.clone(),
        alerts_fired: Some(alerts_fired),
        alerts_seen_until: seen_until,
        ..facts
    });
    let report = report(&scenario, &verdict, &log, took, finished, &replay);
    eprintln!("{report}");
    let dir = repo_path("target/soak");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{}.txt", seed.replace(',', "-"))), &report).unwrap();
    assert!(
        verdict.passed(),
        "soak seed {seed} found what its report says (replay: {replay})"
    );
}

/// Submits each play at its time, by a name of its own: a create that times out while the
/// API server is down is sent again, and the name makes it one play.
async fn submit_all(
    plays: &Plays,
    scenario: &Scenario,
    names: &[String],
    github: &str,
    start: Instant,
) {
    let submissions = scenario
        .plays
        .iter()
        .zip(names)
        .map(|(play, name)| async move {
            tokio::time::sleep_until(start + play.submit_at).await;
            let mut workflow = play_workflow(
                json!({"name": name}),
                &play.task,
                &play.repository,
                &play.commands(github),
            );
            workflow.data["spec"]["workflowTemplateRef"]["name"] = json!(play.pipeline.template());
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                match plays
                    .ns
                    .workflows()
                    .create(&PostParams::default(), &workflow)
                    .await
                {
                    Ok(_) => return,
                    Err(kube::Error::Api(status)) if status.code == 409 => return,
                    Err(err) => {
                        assert!(Instant::now() < deadline, "cannot submit {name}: {err}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
    futures::future::join_all(submissions).await;
}

/// The alerts that fired at any time in the last `span`.
async fn alerts_fired(prometheus: &Prometheus, span: Duration) -> BTreeSet<String> {
    let query = format!(
        "max_over_time(ALERTS{{alertstate=\"firing\"}}[{}s])",
        span.as_secs() + 60
    );
    prometheus
        .query(&query)
        .await
        .iter()
        .filter_map(|series| series["metric"]["alertname"].as_str().map(str::to_string))
        .collect()
}

/// A workflow's pod nodes that `what` picks, each as a cause of `alert`, at the node's end.
fn causes(
    workflow: &Value,
    alert: &'static str,
    what: impl Fn(&Value) -> Option<String>,
) -> Vec<AlertCause> {
    let name = workflow["metadata"]["name"].as_str().unwrap_or_default();
    workflow["status"]["nodes"]
        .as_object()
        .into_iter()
        .flat_map(|nodes| nodes.values())
        .filter(|node| node["type"] == "Pod")
        .filter_map(|node| {
            Some(AlertCause {
                alert,
                at: millis_of(&node["finishedAt"]).unwrap_or_default(),
                what: format!("{name}: {}", what(node)?),
            })
        })
        .collect()
}

/// What should raise an alert, from a workflow: its nodes of `template` that failed.
fn failed_steps(workflow: &Value, template: &str, alert: &'static str) -> Vec<AlertCause> {
    causes(workflow, alert, |node| {
        let failed = node["templateName"] == template
            && matches!(node["phase"].as_str(), Some("Failed" | "Error"));
        failed.then(|| {
            format!(
                "{} {}",
                node["displayName"].as_str().unwrap_or_default(),
                node["message"].as_str().unwrap_or_default()
            )
        })
    })
}

/// What should raise PlayReachedPassLimit, from a play: its exit handler counted it failed at
/// the pass limit (the `failure` output of its mark-failed step).
fn failed_at_the_limit(workflow: &Value) -> Vec<AlertCause> {
    causes(workflow, "PlayReachedPassLimit", |node| {
        let at_limit = node["templateName"] == "mark-failed"
            && node["phase"] == "Succeeded"
            && node["outputs"]["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["name"] == "failure" && p["value"] == "pass-limit")
            });
        at_limit.then(|| "failed at the pass limit".to_string())
    })
}

/// Waits until every play has finished, or the deadline; whether all did.
async fn all_finished(plays: &Plays, names: &[String], deadline: Instant) -> bool {
    loop {
        if let Ok(list) = plays
            .ns
            .workflows()
            .list_metadata(&ListParams::default().labels("workflow-type=play-orchestration"))
            .await
        {
            let done = list
                .items
                .iter()
                .filter(|w| {
                    w.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("workflows.argoproj.io/completed"))
                        == Some(&"true".to_string())
                })
                .count();
            if done == names.len() {
                return true;
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn millis_of(timestamp: &Value) -> Option<Millis> {
    timestamp
        .as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// Ground truth: the plays as the server holds them, its audit log, the stand-in's record.
async fn facts(
    plays: &Plays,
    scenario: &Scenario,
    names: &[String],
    github: &GitHubStandIn,
) -> Facts {
    let mut objects = Vec::new();
    let mut alert_causes = Vec::new();
    for (plan, name) in scenario.plays.iter().zip(names) {
        let object = serde_json::to_value(plays.ns.workflows().get(name).await.unwrap()).unwrap();
        alert_causes.extend(failed_steps(
            &object,
            "update-workflow-stage",
            "PlayStageTransitionFailed",
        ));
        alert_causes.extend(failed_at_the_limit(&object));
        let nodes = object["status"]["nodes"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        // A wait node's pass: its `pass` input; a skipped node has no inputs, and its place
        // says it (each pass after the first is the previous one's `next-pass`).
        let pass_of = |node: &Value| -> u32 {
            let input = node["inputs"]["parameters"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == "pass"))
                .and_then(|p| p["value"].as_str()?.parse().ok());
            input.unwrap_or_else(|| {
                let name = node["name"].as_str().unwrap_or_default();
                1 + name.split('.').filter(|part| *part == "next-pass").count() as u32
            })
        };
        let node_names = nodes
            .iter()
            .map(|(id, node)| {
                (
                    id.clone(),
                    (
                        node["displayName"].as_str().unwrap_or_default().to_string(),
                        pass_of(node),
                    ),
                )
            })
            .collect();
        let waits = plan
            .waits()
            .iter()
            .flat_map(|(stage, wait, _)| {
                nodes
                    .values()
                    .filter(|node| node["displayName"] == *wait)
                    .map(|node| {
                        let outcome = match (node["type"].as_str(), node["phase"].as_str()) {
                            (Some("Skipped"), _) => "Skipped".to_string(),
                            (Some("Suspend"), Some("Succeeded")) => "Succeeded".to_string(),
                            (kind, phase) => {
                                format!("{} {}", kind.unwrap_or("?"), phase.unwrap_or("?"))
                            }
                        };
                        ((stage.to_string(), pass_of(node)), outcome)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        objects.push(PlayObject {
            name: name.clone(),
            plan: plan.clone(),
            phase: object["status"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            stage: object["metadata"]["labels"]["current-stage"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            pass: object["metadata"]["annotations"]["stagectl.dev/pass"]
                .as_str()
                .and_then(|pass| pass.parse().ok())
                .unwrap_or(1),
            waits,
            node_names,
        });
    }

    let entries = plays.ns.audit_entries().await;
    let workflow_entries: Vec<&Value> = entries
        .iter()
        .filter(|e| {
            e["objectRef"]["resource"] == "workflows" && e["objectRef"]["subresource"].is_null()
        })
        .collect();
    // A write the server logged on arrival and never answered: killed between the two, it may
    // have committed it.
    let answered: BTreeSet<&str> = workflow_entries
        .iter()
        .filter(|e| e["stage"] != "RequestReceived")
        .filter_map(|e| e["auditID"].as_str())
        .collect();
    let mut workflows: Vec<String> = Vec::new();
    let mut writes = Vec::new();
    for entry in workflow_entries {
        let unanswered = entry["stage"] == "RequestReceived";
        if unanswered && answered.contains(entry["auditID"].as_str().unwrap_or_default()) {
            continue;
        }
        let code = entry["responseStatus"]["code"].as_u64().unwrap_or(0);
        // 4xx: refused, nothing written. 5xx or no answer: perhaps written (the checker decides).
        let uncertain = unanswered || (500..600).contains(&code);
        let kept = (200..300).contains(&code) || (uncertain && entry["verb"] == "patch");
        if !kept {
            continue;
        }
        match entry["verb"].as_str() {
            Some("create") => {
                let name = entry["objectRef"]["name"]
                    .as_str()
                    .or_else(|| entry["requestObject"]["metadata"]["name"].as_str());
                workflows.extend(name.map(str::to_string));
            }
            Some("patch") => writes.push(Write {
                at: millis_of(&entry["stageTimestamp"]).unwrap_or_default(),
                play: entry["objectRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                user: entry["user"]["username"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                pod: entry["user"]["extra"]["authentication.kubernetes.io/pod-name"][0]
                    .as_str()
                    .map(str::to_string),
                ops: entry["requestObject"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                uncertain,
            }),
            _ => {}
        }
    }
    let listed = plays
        .ns
        .workflows()
        .list(&ListParams::default())
        .await
        .unwrap();
    workflows.extend(listed.items.iter().filter_map(|w| w.metadata.name.clone()));
    workflows.sort();
    workflows.dedup();

    let runs = plays
        .ns
        .workflows()
        .list(&ListParams::default().labels(RECONCILE_RUNS))
        .await
        .unwrap();
    for run in &runs.items {
        let run = serde_json::to_value(run).unwrap();
        let at = millis_of(&run["status"]["finishedAt"]).unwrap_or_default();
        let name = run["metadata"]["name"].as_str().unwrap_or_default();
        let phase = run["status"]["phase"].as_str().unwrap_or_default();
        if matches!(phase, "Failed" | "Error") {
            alert_causes.push(AlertCause {
                alert: "StagectlReconcileFailing",
                at,
                what: format!("{name} {phase}: {}", run["status"]["message"]),
            });
        }
        let recovered: u64 = run["status"]["nodes"]
            .as_object()
            .into_iter()
            .flat_map(|nodes| nodes.values())
            .flat_map(|node| {
                node["outputs"]["parameters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|p| p["name"] == "recovered")
            .filter_map(|p| p["value"].as_str()?.parse::<u64>().ok())
            .sum();
        if recovered > 0 {
            alert_causes.push(AlertCause {
                alert: "PlayWebhookLost",
                at,
                what: format!("{name} recovered {recovered}"),
            });
        }
    }
    let resumes = plays
        .ns
        .workflows()
        .list(&ListParams::default().labels("stagectl.dev/stage-resume"))
        .await
        .unwrap();
    let mut stage_resumes = BTreeMap::new();
    for resume in &resumes.items {
        let resume = serde_json::to_value(resume).unwrap();
        alert_causes.extend(failed_steps(&resume, "resume", "PlayResumeStepFailed"));
        let pod_started = resume["status"]["nodes"]
            .as_object()
            .into_iter()
            .flat_map(|nodes| nodes.values())
            .filter(|node| node["type"] == "Pod")
            .filter_map(|node| millis_of(&node["startedAt"]))
            .min();
        if let (Some(name), Some(created)) = (
            resume["metadata"]["name"].as_str(),
            millis_of(&resume["metadata"]["creationTimestamp"]),
        ) {
            stage_resumes.insert(
                name.to_string(),
                ResumeTimes {
                    created,
                    started: millis_of(&resume["status"]["startedAt"]),
                    pod_started,
                },
            );
        }
    }
    let reconcile_runs = runs
        .items
        .iter()
        .filter_map(|run| {
            let run = serde_json::to_value(run).ok()?;
            Some(ReconcileRun {
                name: run["metadata"]["name"].as_str()?.to_string(),
                created: millis_of(&run["metadata"]["creationTimestamp"])?,
                finished: millis_of(&run["status"]["finishedAt"]),
                failed: matches!(run["status"]["phase"].as_str(), Some("Failed" | "Error")),
            })
        })
        .collect();

    let changes = github
        .log("changes")
        .await
        .into_iter()
        .map(|c| Change {
            at: c["at"].as_i64().unwrap_or_default(),
            repository: c["repository"].as_str().unwrap_or_default().into(),
            task: c["task"].as_str().unwrap_or_default().into(),
            kind: c["kind"].as_str().unwrap_or_default().into(),
        })
        .collect();
    let deliveries = github
        .log("deliveries")
        .await
        .into_iter()
        .map(|d| Delivery {
            sent_at: d["sentAt"]
                .as_i64()
                .or(d["at"].as_i64())
                .unwrap_or_default(),
            id: d["id"].as_str().unwrap_or_default().into(),
            repository: d["repository"].as_str().unwrap_or_default().into(),
            task: d["task"].as_str().unwrap_or_default().into(),
            kind: d["kind"].as_str().unwrap_or_default().into(),
            answer: d["answer"].as_str().unwrap_or_default().into(),
        })
        .collect();
    let github_requests = github
        .log("requests")
        .await
        .into_iter()
        .map(|r| GitHubRequest {
            at: r["at"].as_i64().unwrap_or_default(),
            faulted: r.get("fault").is_some(),
        })
        .collect();
    Facts {
        plays: objects,
        writes,
        workflows,
        changes,
        deliveries,
        reconcile_interval: RECONCILE_INTERVAL,
        reconcile_runs,
        github_requests,
        fault_windows: Vec::new(),
        alert_causes,
        alerts_fired: None,
        alerts_seen_until: 0,
        stage_resumes,
    }
}

fn report(
    scenario: &Scenario,
    verdict: &Verdict,
    log: &nemesis::Log,
    took: Duration,
    finished: bool,
    replay: &str,
) -> String {
    let mut text = String::new();
    let size = scenario.size;
    writeln!(
        text,
        "soak seed {}: {} plays of pipeline {} over {}s, {:.1} faults a minute; took {:.0}s{}",
        seeds_text(&scenario.seeds),
        scenario.plays.len(),
        scenario.pipeline.name(),
        size.duration.as_secs(),
        size.faults_per_minute,
        took.as_secs_f64(),
        if finished {
            ""
        } else {
            " (not every play finished by the deadline)"
        }
    )
    .unwrap();
    writeln!(text, "replay: {replay}").unwrap();
    writeln!(text, "faults injected:").unwrap();
    for (kind, count) in &log.injected {
        writeln!(text, "  {count:>4}  {kind}").unwrap();
    }
    for (process, count) in &log.exited_on_their_own {
        writeln!(
            text,
            "  {count:>4}  {process} exited on its own and was restarted"
        )
        .unwrap();
    }
    let double = verdict
        .violations
        .get(checker::PROPERTIES[2])
        .map_or(0, Vec::len);
    let misrouted = verdict
        .violations
        .get(checker::PROPERTIES[3])
        .map_or(0, Vec::len);
    let lost = verdict
        .violations
        .get(checker::PROPERTIES[0])
        .map_or(0, Vec::len);
    writeln!(
        text,
        "waits released {}; webhooks accepted {}, refused {} ({} waits released by a webhook GitHub saw fail); waits whose webhooks were all lost {} (recovered by reconcile {}, the longest after {:.1}s)",
        verdict.waits_released,
        verdict.deliveries_accepted,
        verdict.deliveries_refused,
        verdict.released_by_unanswered,
        verdict.webhooks_lost,
        verdict.recovered_by_reconcile,
        verdict.longest_recovery.as_secs_f64()
    )
    .unwrap();
    writeln!(text, "plays not ended as planned {lost} / waits not released once {double} / releases not by their own event {misrouted}").unwrap();
    writeln!(
        text,
        "event latency, webhook accepted to wait resumed: without faults {}; during a fault {}",
        checker::latency_summary(&verdict.latency_quiet),
        checker::latency_summary(&verdict.latency_faulted)
    )
    .unwrap();
    // Where a quiet webhook's time goes (the server's times are whole seconds).
    let legs: Vec<String> = checker::LEGS
        .iter()
        .zip(&verdict.legs_quiet)
        .map(|(leg, took)| format!("{leg}: {}", checker::latency_summary(took)))
        .collect();
    writeln!(text, "  of which {}", legs.join("; ")).unwrap();
    let alerts: Vec<String> = verdict
        .alerts
        .iter()
        .map(|(alert, fired, causes)| {
            format!(
                "{alert} {} ({causes} causes)",
                if *fired { "fired" } else { "quiet" }
            )
        })
        .collect();
    writeln!(text, "alerts: {}", alerts.join(", ")).unwrap();
    writeln!(text, "properties:").unwrap();
    text.push_str(&verdict.report());
    writeln!(
        text,
        "faults and restarts ({} restarts failed at first), times from the start at {} UTC:",
        log.failed_starts,
        checker::clock(log.began)
    )
    .unwrap();
    for line in &log.timeline {
        writeln!(text, "  {line}").unwrap();
    }
    text
}
