//! The soak's checker. It decides from ground truth alone — what the API server holds and logged
//! (the plays' final objects; every patch of a play, with its body and the pod whose bound token
//! made it, from the audit log) and what happened on "GitHub" (the stand-in's log of changes and
//! of webhook deliveries) — never from stagectl's own records. Each property is stated with the
//! plays that break it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use super::scenario::PlayPlan;

/// Milliseconds since the epoch: the audit log's and the stand-in's clocks are this machine's.
pub type Millis = i64;

/// A play as the API server holds it at the end.
#[derive(Clone, Debug)]
pub struct PlayObject {
    pub name: String,
    pub plan: PlayPlan,
    pub phase: String,
    pub stage: String,
    /// The pass it ended in (its `stagectl.dev/pass`; 1 without one).
    pub pass: u32,
    /// Per waiting stage and pass, how its wait node ended: `Skipped`, `Succeeded` (a suspend
    /// node resumed), another phase, or absent.
    pub waits: BTreeMap<(String, u32), String>,
    /// Node id → display name and pass, to read the patches that name nodes by id.
    pub node_names: BTreeMap<String, (String, u32)>,
}

/// A change of a play's stage, and the pass the play is in after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageWrite {
    pub stage: String,
    pub at: Millis,
    pub pass: u32,
}

/// A successful patch of a play, from the audit log, in the order the server logged them.
#[derive(Clone, Debug)]
pub struct Write {
    pub at: Millis,
    pub play: String,
    pub user: String,
    /// The pod the token was bound to.
    pub pod: Option<String>,
    pub ops: Vec<Value>,
    /// Answered 5xx: it may have been applied all the same (the server's answer, not the
    /// write, failed), and its body may be missing from the log.
    pub uncertain: bool,
}

/// A change on GitHub, from the stand-in's log.
#[derive(Clone, Debug)]
pub struct Change {
    pub at: Millis,
    pub repository: String,
    pub task: String,
    pub kind: String,
}

/// A webhook delivery and its answer, from the stand-in's log.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// When it was sent: the EventSource may answer after the event has been handled (its
    /// publish held while the bus reconnects).
    pub sent_at: Millis,
    pub id: String,
    pub repository: String,
    pub task: String,
    pub kind: String,
    pub answer: String,
}

impl Delivery {
    /// The EventSource took it (a 2xx): it is on the bus.
    pub fn accepted(&self) -> bool {
        self.answer.starts_with('2')
    }

    /// Whether it went on the wire at all: a dropped delivery (GitHub's failed, the agent's
    /// `--event dropped`) never reached the EventSource, whatever else happened.
    pub fn sent(&self) -> bool {
        self.answer != "dropped"
    }
}

/// Everything the checker reads.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub plays: Vec<PlayObject>,
    pub writes: Vec<Write>,
    /// Workflow names the server knows, to tell which workflow a pod belongs to.
    pub workflows: Vec<String>,
    pub changes: Vec<Change>,
    pub deliveries: Vec<Delivery>,
    pub reconcile_interval: Duration,
    /// Every reconcile run, from its creation to its end (the server's times).
    pub reconcile_runs: Vec<ReconcileRun>,
    /// Every API request the GitHub stand-in answered, in order.
    pub github_requests: Vec<GitHubRequest>,
    /// When killed processes were down, to split event latency into with and without faults,
    /// and to allow for a reconcile run that could not start on time.
    pub fault_windows: Vec<Downtime>,
    /// What should raise each alert, from the server's objects: failed steps and runs, waits
    /// reconcile recovered.
    pub alert_causes: Vec<AlertCause>,
    /// The alerts Prometheus fired at any time of the run (None: not watched).
    pub alerts_fired: Option<BTreeSet<String>>,
    /// Until when Prometheus had scraped and evaluated; a later cause it could not see.
    pub alerts_seen_until: Millis,
    /// Each stage-resume workflow's times, by its name (`stage-resume-<delivery id>`, lower
    /// case): where a webhook's latency goes.
    pub stage_resumes: BTreeMap<String, ResumeTimes>,
}

/// A stage-resume workflow's way, in the server's times (whole seconds): created by the
/// Sensor's trigger, taken up by the controller, its pod started.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResumeTimes {
    pub created: Millis,
    pub started: Option<Millis>,
    pub pod_started: Option<Millis>,
}

/// The legs of a webhook's way to the wait it resumes, in order: what the latency is made of.
pub const LEGS: [&str; 4] = [
    "EventSource, bus and Sensor until its Workflow is created",
    "until Argo's controller takes the Workflow up",
    "until its pod starts",
    "until stagectl resume acts in it",
];

/// Something that should raise an alert, when the controller counted it.
#[derive(Clone, Debug)]
pub struct AlertCause {
    pub alert: &'static str,
    pub at: Millis,
    pub what: String,
}

/// The alerts of examples/monitoring/prometheus-rule.yaml.
pub const ALERTS: [&str; 6] = [
    "PlayStageTransitionFailed",
    "PlayResumeStepFailed",
    "PlayStuckInWaitingStage",
    "PlayWebhookLost",
    "StagectlReconcileFailing",
    "PlayReachedPassLimit",
];

/// How long after counting something the controller must live for Prometheus to see it: its
/// counters die with it, and a count not scraped before a kill -9 is gone (as in production).
pub const SCRAPE_GRACE: Millis = 10_000;

/// One run of the reconcile CronWorkflow, as the server recorded it.
#[derive(Clone, Debug)]
pub struct ReconcileRun {
    pub name: String,
    pub created: Millis,
    /// None while it runs.
    pub finished: Option<Millis>,
    /// Ended Failed or Error.
    pub failed: bool,
}

/// An API request the GitHub stand-in answered, by its record.
#[derive(Clone, Debug)]
pub struct GitHubRequest {
    pub at: Millis,
    /// Met a fault the nemesis queued (a 5xx, a reset, a stall, a secondary limit) instead of
    /// its answer.
    pub faulted: bool,
}

/// A process killed, from the kill until it ran again.
#[derive(Clone, Debug)]
pub struct Downtime {
    pub process: String,
    pub from: Millis,
    pub to: Millis,
}

/// What no reconcile run can recover without: the processes that schedule and run it, and
/// GitHub's rate limit (a run with the limit used up writes nothing, by design).
const RECONCILE_NEEDS: [&str; 3] = ["apiserver", "workflow-controller", GITHUB_RATE_LIMIT];

/// How long GitHub must have failed a reconcile run's last request, attempt after attempt,
/// for the run to give up on it: reconcile tries one GET again until its next pause (8 s at
/// most, up to twice that with jitter) no longer fits in its --timeout of 60 s, which the
/// CronWorkflow keeps (src/github.rs, `get`). A run that failed sooner gave up on a fault it
/// should have ridden through.
const GITHUB_BUDGET_SPENT: Millis = 60_000 - 16_000;

/// The windows in which no reconcile run can recover a lost webhook: what it needs was down,
/// or GitHub's faults wore a run out. Computed once per check.
fn windows_reconcile_needs(facts: &Facts) -> Vec<Downtime> {
    facts
        .fault_windows
        .iter()
        .filter(|w| RECONCILE_NEEDS.contains(&w.process.as_str()))
        .cloned()
        .chain(runs_github_wore_out(facts))
        .collect()
}

/// The window of a reconcile run that GitHub's queued faults wore out.
const GITHUB_FAULTS: &str = "github faults";

/// The reconcile runs that failed because GitHub kept failing them (by the stand-in's record):
/// the run's last requests, from the first after its last good answer, all met faults, for as
/// long as reconcile's budget for one request lasts. Each is a window of what reconcile needs,
/// from that first faulted request to the run's end. (The fourteenth full soak: one run met
/// five 502s, a stall, a secondary limit and a stall again within its minute; it gave up, the
/// CronWorkflow skipped the run due while it went on, and the next recovered 13 lost webhooks
/// after the bound.)
fn runs_github_wore_out(facts: &Facts) -> impl Iterator<Item = Downtime> + '_ {
    facts
        .reconcile_runs
        .iter()
        .filter(|run| run.failed)
        .filter_map(|run| {
            let finished = run.finished?;
            let during: Vec<&GitHubRequest> = facts
                .github_requests
                .iter()
                .filter(|r| run.created <= r.at && r.at <= finished)
                .collect();
            let streak = during.iter().rev().take_while(|r| r.faulted).count();
            // None when its last answer was a good one.
            let first_faulted = during[during.len() - streak..].first()?.at;
            (finished - first_faulted >= GITHUB_BUDGET_SPENT).then(|| Downtime {
                process: GITHUB_FAULTS.into(),
                from: first_faulted,
                to: finished,
            })
        })
}

/// The fault window of GitHub's primary rate limit used up.
pub const GITHUB_RATE_LIMIT: &str = "github rate limit";

/// What released a wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writer {
    /// The stage-resume workflow of a webhook delivery.
    StageResume(String),
    /// A run of the reconcile CronWorkflow.
    Reconcile(String),
    /// Anything else: a play's own step, a person.
    Other(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// An early event latched, the wait skipped when the play reached it.
    Latched,
    /// The wait node resumed.
    Resumed,
}

#[derive(Clone, Debug)]
pub struct Release {
    pub stage: &'static str,
    /// The pass whose wait it released.
    pub pass: u32,
    pub how: How,
    pub by: Writer,
    pub at: Millis,
}

/// The verdict: each property with the plays that break it, and the figures of the report.
#[derive(Debug, Default)]
pub struct Verdict {
    pub violations: BTreeMap<&'static str, Vec<String>>,
    pub waits_released: usize,
    pub deliveries_accepted: usize,
    pub deliveries_refused: usize,
    pub webhooks_lost: usize,
    pub recovered_by_reconcile: usize,
    /// Waits released by a webhook whose every send GitHub saw fail (the EventSource published
    /// it, then its answer was lost): not lost, and a redelivery is a no-op.
    pub released_by_unanswered: usize,
    pub longest_recovery: Duration,
    /// Each alert: whether it fired, and how many causes the server holds.
    pub alerts: Vec<(&'static str, bool, usize)>,
    pub latency_quiet: Vec<Duration>,
    pub latency_faulted: Vec<Duration>,
    /// For each quiet release whose stage-resume is known, its latency in [`LEGS`].
    pub legs_quiet: [Vec<Duration>; 4],
}

impl Verdict {
    /// The legs of one webhook's latency, from its send to the resume that acted on it; none
    /// when the workflow's times are incomplete.
    fn add_legs(&mut self, sent_at: Millis, times: &ResumeTimes, resumed_at: Millis) {
        let (Some(started), Some(pod_started)) = (times.started, times.pod_started) else {
            return;
        };
        let marks = [sent_at, times.created, started, pod_started, resumed_at];
        for (leg, pair) in marks.windows(2).enumerate() {
            let took = (pair[1] - pair[0]).max(0) as u64;
            self.legs_quiet[leg].push(Duration::from_millis(took));
        }
    }
}

pub const PROPERTIES: [&str; 7] = [
    "every play ends as planned (completed, or failed where its agent failed or at the pass limit), in the pass its reviews lead to",
    "no stage skipped or repeated in any pass of any play's stage changes",
    "each wait of each pass released exactly once",
    "each release by an event of the play's own task, repository, stage and pass",
    "each wait node of each pass ended as its release says (skipped after a latch, resumed after a resume)",
    "every lost webhook recovered within one reconcile interval (and the runs' lengths)",
    "the alerts that should fire do, and none that should not",
];

impl Verdict {
    pub fn passed(&self) -> bool {
        self.violations.values().all(Vec::is_empty)
    }

    fn flag(&mut self, property: usize, play: &str, detail: String) {
        self.violations
            .entry(PROPERTIES[property])
            .or_default()
            .push(format!("{play}: {detail}"));
    }

    pub fn report(&self) -> String {
        let mut text = String::new();
        for property in PROPERTIES {
            let broken = self.violations.get(property).map_or(0, Vec::len);
            let mark = if broken == 0 { "ok  " } else { "FAIL" };
            writeln!(text, "  {mark} {property}").unwrap();
            for line in self.violations.get(property).into_iter().flatten() {
                writeln!(text, "         {line}").unwrap();
            }
        }
        text
    }
}

/// A time of day in UTC, to find a moment of the report in the logs.
pub fn clock(at: Millis) -> String {
    jiff::Timestamp::from_millisecond(at).map_or_else(
        |_| at.to_string(),
        |t| t.strftime("%H:%M:%S%.3f").to_string(),
    )
}

fn latch_path(stage: &str) -> String {
    format!("/metadata/annotations/stagectl.dev~1latch-{stage}")
}

/// Which workflow a pod belongs to: the longest workflow name that, with a dash, starts it, or
/// is its name (Argo names the pod of a workflow of one step after the workflow).
fn workflow_of<'a>(pod: &str, workflows: &'a [String]) -> Option<&'a str> {
    workflows
        .iter()
        .filter(|name| pod == name.as_str() || pod.starts_with(&format!("{name}-")))
        .max_by_key(|name| name.len())
        .map(String::as_str)
}

fn writer(write: &Write, workflows: &[String]) -> Writer {
    let workflow = write
        .pod
        .as_deref()
        .and_then(|pod| workflow_of(pod, workflows));
    match workflow {
        Some(name) if name.starts_with("stage-resume-") => {
            Writer::StageResume(name.trim_start_matches("stage-resume-").to_string())
        }
        Some(name) if name.starts_with("stagectl-reconcile-") => Writer::Reconcile(name.into()),
        _ => Writer::Other(format!(
            "{} (pod {})",
            write.user,
            write.pod.as_deref().unwrap_or("none")
        )),
    }
}

const PASS_PATH: &str = "/metadata/annotations/stagectl.dev~1pass";

/// Whether a write moves the play to `failed`.
fn fails_the_play(write: &Write) -> bool {
    write.ops.iter().any(|op| {
        op["path"] == "/metadata/labels/current-stage"
            && matches!(op["op"].as_str(), Some("add" | "replace"))
            && op["value"] == "failed"
    })
}

/// The pass a write tests (`test`), or writes (`add`, `replace`).
fn pass_in(write: &Write, kinds: &[&str]) -> Option<u32> {
    write.ops.iter().find_map(|op| {
        (op["path"] == PASS_PATH && kinds.contains(&op["op"].as_str().unwrap_or_default()))
            .then(|| op["value"].as_str()?.parse().ok())
            .flatten()
    })
}

/// The stage-label writes of a play, in order, and the releases of its waits, each in its pass:
/// a write that sends the play back writes the next pass beside `pending`, and every write after
/// tests it.
///
/// A write answered 5xx may have been applied: the API server can commit a write and then fail
/// to answer it (a timeout, a shutdown), and log the 5xx without the body. Such a write counts
/// as the stage change a later successful write proves — one whose `test` finds the stage at a
/// value no certain write set — and never otherwise; and as the latch a later successful write
/// proves — one whose `test` finds the latch holding an event no certain write latched (the
/// `set` that honours it).
fn read_writes(play: &PlayObject, facts: &Facts) -> (Vec<StageWrite>, Vec<Release>) {
    let mut stages: Vec<StageWrite> = Vec::new();
    let mut releases = Vec::new();
    let mut unproven: Option<Millis> = None;
    let mut uncertain: Vec<&Write> = Vec::new();
    let mut pass = 1;
    for write in facts.writes.iter().filter(|w| w.play == play.name) {
        if write.uncertain {
            unproven.get_or_insert(write.at);
            uncertain.push(write);
            continue;
        }
        // What it tests is where the play stood: a send-back answered 5xx is proven here.
        if let Some(tested) = pass_in(write, &["test"]) {
            pass = tested;
        }
        for &(stage, ..) in play.plan.waits() {
            let proven = write.ops.iter().find_map(|op| {
                (op["op"] == "test" && op["path"] == latch_path(stage))
                    .then(|| op["value"].as_str())
                    .flatten()
                    .filter(|value| !value.is_empty())
            });
            let Some(latch) = proven else { continue };
            if releases
                .iter()
                .any(|r: &Release| r.stage == stage && r.pass == pass && r.how == How::Latched)
            {
                continue;
            }
            // The write that latched it: one whose logged body latched exactly that, else the
            // last whose body the log lacks.
            let sets_it = |w: &&&Write| {
                w.ops.iter().any(|op| {
                    matches!(op["op"].as_str(), Some("add" | "replace"))
                        && op["path"] == latch_path(stage)
                        && op["value"] == latch
                })
            };
            let latched_by = uncertain
                .iter()
                .rev()
                .find(sets_it)
                .or_else(|| uncertain.iter().rev().find(|w| w.ops.is_empty()));
            if let Some(latched_by) = latched_by {
                releases.push(Release {
                    stage,
                    pass,
                    how: How::Latched,
                    by: writer(latched_by, &facts.workflows),
                    at: latched_by.at,
                });
            }
        }
        let tested = write.ops.iter().find_map(|op| {
            (op["op"] == "test" && op["path"] == "/metadata/labels/current-stage")
                .then(|| op["value"].as_str())
                .flatten()
        });
        let last = stages.last().map_or("pending", |s| s.stage.as_str());
        if let (Some(tested), Some(at)) = (tested, unproven)
            && tested != last
        {
            stages.push(StageWrite {
                stage: tested.to_string(),
                at,
                pass,
            });
        }
        // Only a write that tests the stage proves or rules out anything (a history trim does
        // neither).
        if tested.is_some() {
            unproven = None;
        }
        let next_pass = pass_in(write, &["add", "replace"]);
        for op in &write.ops {
            let (Some(kind), Some(path)) = (op["op"].as_str(), op["path"].as_str()) else {
                continue;
            };
            if !matches!(kind, "replace" | "add") {
                continue;
            }
            // `pending` is where a play starts, not a change (written by the controller from
            // the template, or by the play's start step where the controller skipped that) —
            // unless a wait sent the play back to it, into its next pass.
            if path == "/metadata/labels/current-stage"
                && (op["value"] != "pending" || next_pass.is_some())
            {
                stages.push(StageWrite {
                    stage: op["value"].as_str().unwrap_or_default().to_string(),
                    at: write.at,
                    pass: next_pass.unwrap_or(pass),
                });
            }
            for &(stage, node, _) in play.plan.waits() {
                let latched = path == latch_path(stage)
                    && op["value"].as_str().is_some_and(|value| !value.is_empty());
                let resumed = resumed_node(op, play, node, fails_the_play(write));
                if latched || resumed.is_some() {
                    releases.push(Release {
                        stage,
                        pass: resumed.unwrap_or(pass),
                        how: if latched { How::Latched } else { How::Resumed },
                        by: writer(write, &facts.workflows),
                        at: write.at,
                    });
                }
            }
        }
        if let Some(next) = next_pass {
            pass = next;
        }
    }
    releases.extend(resumes_proven_by_their_nodes(
        play, facts, &stages, &releases,
    ));
    // The last change answered 5xx, nothing after it to test the stage: the play as the server
    // holds it now is the proof.
    let last = stages.last().map_or("pending", |s| s.stage.as_str());
    if let Some(at) = unproven
        && !play.stage.is_empty()
        && play.stage != last
    {
        stages.push(StageWrite {
            stage: play.stage.clone(),
            at,
            pass: play.pass,
        });
    }
    (stages, releases)
}

/// The pass of the wait node `node` of `play` that `op` ends as a resume does: Succeeded, or
/// Failed where the event failed the play there (at the pass limit; the same write moves the
/// play to `failed`, `failing`).
fn resumed_node(op: &Value, play: &PlayObject, node: &str, failing: bool) -> Option<u32> {
    if op["value"] != "Succeeded" && !(failing && op["value"] == "Failed") {
        return None;
    }
    let id = op["path"]
        .as_str()?
        .strip_prefix("/status/nodes/")?
        .strip_suffix("/phase")?;
    let (name, pass) = play.node_names.get(id)?;
    (name == node).then_some(*pass)
}

/// The resumes that only the wait nodes prove. A resume answered 5xx, or never answered (the
/// server killed between committing it and logging its answer, so that the log holds only its
/// arrival), may have been applied; a suspend node that ended Succeeded with no certain write
/// resuming it shows that one was (nothing else makes a suspend node Succeeded). It is the
/// uncertain write, made while the play was at the stage, whose logged body resumes that node;
/// else the first such write without a body by a writer that resumes (a stage-resume step or
/// reconcile).
fn resumes_proven_by_their_nodes(
    play: &PlayObject,
    facts: &Facts,
    stages: &[StageWrite],
    certain: &[Release],
) -> Vec<Release> {
    let mut proven = Vec::new();
    for ((stage, pass), outcome) in &play.waits {
        let Some(&(stage, node, _)) = play.plan.waits().iter().find(|(s, ..)| s == stage) else {
            continue;
        };
        if outcome != "Succeeded" || certain.iter().any(|r| r.stage == stage && r.pass == *pass) {
            continue;
        }
        let Some(entered) = stages
            .iter()
            .find(|s| s.stage == stage && s.pass == *pass)
            .map(|s| s.at)
        else {
            continue;
        };
        let candidates: Vec<&Write> = facts
            .writes
            .iter()
            .filter(|w| w.play == play.name && w.uncertain && w.at >= entered)
            .collect();
        let resumed_by = candidates
            .iter()
            .find(|w| {
                w.ops
                    .iter()
                    .any(|op| resumed_node(op, play, node, false) == Some(*pass))
            })
            .or_else(|| {
                candidates.iter().find(|w| {
                    w.ops.is_empty()
                        && matches!(
                            writer(w, &facts.workflows),
                            Writer::StageResume(_) | Writer::Reconcile(_)
                        )
                })
            });
        if let Some(write) = resumed_by {
            proven.push(Release {
                stage,
                pass: *pass,
                how: How::Resumed,
                by: writer(write, &facts.workflows),
                at: write.at,
            });
        }
    }
    proven
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

pub fn latency_summary(latencies: &[Duration]) -> String {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    format!(
        "p50 {:.2}s, p99 {:.2}s ({} events)",
        percentile(&sorted, 0.5).as_secs_f64(),
        percentile(&sorted, 0.99).as_secs_f64(),
        sorted.len()
    )
}

pub fn check(facts: &Facts) -> Verdict {
    let mut verdict = Verdict {
        deliveries_accepted: facts.deliveries.iter().filter(|d| d.accepted()).count(),
        deliveries_refused: facts
            .deliveries
            .iter()
            .filter(|d| !d.accepted() && d.answer != "dropped")
            .count(),
        ..Verdict::default()
    };
    let repository_key = |name: &str| name.to_lowercase();
    let reconcile_windows = windows_reconcile_needs(facts);
    for play in &facts.plays {
        let failing = play.plan.failing_agent();
        let waits = play.plan.waits();
        let passes = play.plan.passes();
        let at_limit = play.plan.fails_at_limit();
        let (want_phase, want_stage) = match failing {
            _ if at_limit => ("Failed", "failed"),
            Some(_) => ("Failed", "failed"),
            None => ("Succeeded", "completed"),
        };
        if (play.phase.as_str(), play.stage.as_str(), play.pass) != (want_phase, want_stage, passes)
        {
            verdict.flag(
                0,
                &play.name,
                format!(
                    "phase {} at stage {} in pass {}, planned {want_phase} at {want_stage} in pass {passes}",
                    play.phase, play.stage, play.pass
                ),
            );
        }

        let (stages, releases) = read_writes(play, facts);
        // When each pass began: the send-back into it (the first, with the play).
        let began = |pass: u32| -> Millis {
            if pass == 1 {
                return Millis::MIN;
            }
            stages
                .iter()
                .find(|s| s.pass == pass)
                .map_or(Millis::MAX, |s| s.at)
        };
        // The wait whose event sends the play back, by index.
        let sender = play
            .plan
            .sender()
            .map_or(waits.len() - 1, |(index, _)| index);
        for pass in 1..=passes {
            // A pass sent back (or failed at the limit) passes every wait up to the sender's:
            // that one is decided by the change request or the red check, entered on time or
            // decided before it (latched). No wait after it is entered in that pass.
            let decided_by_review = pass < passes || at_limit;
            let written: Vec<&str> = stages
                .iter()
                .filter(|s| s.pass == pass)
                .map(|s| s.stage.as_str())
                .collect();
            let passed = if decided_by_review {
                sender + 1
            } else {
                failing.unwrap_or(waits.len())
            };
            let mut path: Vec<&str> = Vec::new();
            if pass > 1 {
                path.push("pending");
            }
            path.extend(waits[..passed].iter().map(|(stage, ..)| *stage));
            let mut without_last_wait = path.clone();
            without_last_wait.pop();
            match (decided_by_review, pass == passes) {
                (true, true) => {
                    path.push("failed");
                    without_last_wait.push("failed");
                }
                (false, _) => path.push(want_stage),
                (true, false) => {}
            }
            if written != path && !(decided_by_review && written == without_last_wait) {
                verdict.flag(
                    1,
                    &play.name,
                    format!("pass {pass}: stage changes {written:?}, expected {path:?}"),
                );
            }
            let window = (began(pass), began(pass + 1));
            let in_window = |at: Millis| window.0 <= at && at < window.1;

            for (index, (stage, _, _)) in waits.iter().enumerate() {
                let change_kind = play.plan.change_in_pass(index, pass);
                let here: Vec<&Release> = releases
                    .iter()
                    .filter(|r| r.stage == *stage && r.pass == pass)
                    .collect();
                let reached = index < passed;
                // The failing agent's own event may latch a wait the play never reaches.
                let allowed = if reached {
                    1..=1
                } else if index == passed && !decided_by_review {
                    0..=1
                } else {
                    0..=0
                };
                if !allowed.contains(&here.len())
                    || (!reached && here.iter().any(|r| r.how == How::Resumed))
                {
                    verdict.flag(
                        2,
                        &play.name,
                        format!(
                            "{stage} of pass {pass} released {} times: {here:?}",
                            here.len()
                        ),
                    );
                }
                verdict.waits_released += usize::from(reached && here.len() == 1);

                let ours = |d: &Delivery| {
                    d.task == play.plan.task
                        && repository_key(&d.repository) == repository_key(&play.plan.repository)
                        && d.kind == change_kind
                };
                // A delivery is the pass's whose first send was in it: the agents of a pass
                // run after it began, and a redelivery keeps its id.
                let first_sent = |id: &str| {
                    facts
                        .deliveries
                        .iter()
                        .filter(|d| d.id.eq_ignore_ascii_case(id) && d.sent())
                        .map(|d| d.sent_at)
                        .min()
                };
                let change = facts.changes.iter().find(|c| {
                    c.task == play.plan.task
                        && repository_key(&c.repository) == repository_key(&play.plan.repository)
                        && c.kind == change_kind
                        && in_window(c.at)
                });
                for release in &here {
                    let own = match &release.by {
                        // Whatever GitHub was answered: an event the EventSource published before
                        // its answer was lost (killed, its bus down) is still this play's own.
                        Writer::StageResume(id) => {
                            facts
                                .deliveries
                                .iter()
                                .any(|d| d.id.eq_ignore_ascii_case(id) && d.sent() && ours(d))
                                && first_sent(id).is_some_and(in_window)
                        }
                        Writer::Reconcile(_) => change.is_some_and(|c| c.at <= release.at),
                        Writer::Other(_) => false,
                    };
                    if !own {
                        verdict.flag(
                            3,
                            &play.name,
                            format!(
                                "{stage} of pass {pass} released by {:?}, not an event of its own",
                                release.by
                            ),
                        );
                    }
                }

                if reached && here.len() == 1 {
                    let node = play
                        .waits
                        .get(&(stage.to_string(), pass))
                        .map(String::as_str);
                    // At the limit, the change request fails the wait it ends (or, latched,
                    // the step entering it fails first: no wait node).
                    let last_review = at_limit && pass == passes && index + 1 == waits.len();
                    let expected: &[Option<&str>] = match (here[0].how, last_review) {
                        (How::Latched, false) => &[Some("Skipped")],
                        (How::Resumed, false) => &[Some("Succeeded")],
                        // The step that entered it failed: the wait is skipped, or never made.
                        (How::Latched, true) => &[Some("Skipped"), None],
                        (How::Resumed, true) => &[Some("Suspend Failed")],
                    };
                    if !expected.contains(&node) {
                        verdict.flag(
                            4,
                            &play.name,
                            format!(
                                "{stage} of pass {pass}: wait node {node:?} after a {:?}",
                                here[0].how
                            ),
                        );
                    }
                    let release = here[0];
                    let sent: Vec<&Delivery> = facts
                        .deliveries
                        .iter()
                        .filter(|d| ours(d) && d.sent() && in_window(d.sent_at))
                        .collect();
                    // The first send of the delivery that released the wait, if a webhook did.
                    let first_send = match &release.by {
                        Writer::StageResume(id) => sent
                            .iter()
                            .filter(|d| d.id.eq_ignore_ascii_case(id))
                            .map(|d| (d.sent_at, d.accepted()))
                            .min_by_key(|(at, _)| *at),
                        _ => None,
                    };
                    let accepted = sent.iter().any(|d| d.accepted());
                    if first_send.is_some() && !accepted {
                        verdict.released_by_unanswered += 1;
                    }
                    if first_send.is_none() && !accepted {
                        verdict.webhooks_lost += 1;
                        // From the later of the change on GitHub and the play entering the stage.
                        let entered = stages
                            .iter()
                            .find(|s| s.stage == *stage && s.pass == pass)
                            .map_or(release.at, |s| s.at);
                        let since = change.map_or(entered, |c| c.at.max(entered));
                        let took = Duration::from_millis((release.at - since).max(0) as u64);
                        verdict.longest_recovery = verdict.longest_recovery.max(took);
                        // A run cannot be scheduled or write while the controller or the API
                        // server is down, nor read GitHub while its rate limit is used up.
                        let clear = clear_of_windows(facts, &reconcile_windows, since, release.at);
                        let bound = recovery_bound(facts, clear, &release.by, release.at)
                            + Duration::from_millis((clear - since) as u64);
                        if !matches!(release.by, Writer::Reconcile(_)) || took > bound {
                            verdict.flag(
                                5,
                                &play.name,
                                format!(
                                    "{stage} of pass {pass}: no webhook accepted; released by {:?} at {} {:.1}s after it could be ({}; clear of windows from {}; bound {:.1}s)",
                                    release.by,
                                    clock(release.at),
                                    took.as_secs_f64(),
                                    clock(since),
                                    clock(clear),
                                    bound.as_secs_f64()
                                ),
                            );
                        }
                        if matches!(release.by, Writer::Reconcile(_)) {
                            verdict.recovered_by_reconcile += 1;
                        }
                    } else if release.how == How::Resumed
                        && let Some((sent_at, _)) = first_send
                    {
                        let latency = Duration::from_millis((release.at - sent_at).max(0) as u64);
                        let faulted = facts
                            .fault_windows
                            .iter()
                            .any(|w| w.from <= release.at && sent_at <= w.to);
                        if faulted {
                            verdict.latency_faulted.push(latency);
                        } else {
                            verdict.latency_quiet.push(latency);
                            if let Writer::StageResume(id) = &release.by {
                                let name = format!("stage-resume-{}", id.to_ascii_lowercase());
                                if let Some(times) = facts.stage_resumes.get(&name) {
                                    verdict.add_legs(sent_at, times, release.at);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    check_alerts(facts, &mut verdict);
    verdict
}

/// From when reconcile's next run can recover a webhook lost at `since`: a window of what
/// reconcile needs that begins before the run due next has ended (it is due an interval after
/// the run going then stops blocking it, at most) can fail that run or keep it from starting,
/// so the wait starts again at the window's end — not only the window's length later (the
/// tenth full soak: a rate limit that came back seconds after a run was due cost the whole
/// interval after it), not only for a window that begins before the run is due (the
/// thirteenth: a run slowed by GitHub's resets and a stall met a rate limit that began 20 s
/// after it started, and failed on it), and not only within an interval of `since` when a run
/// going then makes `Forbid` skip the run due meanwhile (the fifteenth: the run due next came a
/// minute later, and met a rate limit that began in that minute). Windows chain.
fn clear_of_windows(
    facts: &Facts,
    windows: &[Downtime],
    since: Millis,
    released: Millis,
) -> Millis {
    let interval = facts.reconcile_interval.as_millis() as Millis;
    let mut clear = since;
    loop {
        let due_by = going_until(facts, clear, released) + interval;
        let next_run_ends = facts
            .reconcile_runs
            .iter()
            .filter(|run| clear <= run.created && run.created <= due_by)
            .min_by_key(|run| run.created)
            .and_then(|run| run.finished)
            .map_or(due_by, |finished| finished.max(due_by));
        let Some(end) = windows
            .iter()
            .filter(|w| w.from <= next_run_ends && w.to > clear)
            .map(|w| w.to)
            .max()
        else {
            return clear;
        };
        clear = end;
    }
}

/// Argo's cron controller takes a finished run off the CronWorkflow's `status.active` only in
/// its sync, every 10 s (`CRON_SYNC_PERIOD`), and `Forbid` skips a run due while that list
/// holds one (workflow/cron/operator.go `enforceRuntimePolicy`): a run blocks the next until up
/// to 10 s after it ended. (The thirteenth full soak: a run that ended at 14:00:55 skipped the
/// run of 14:01.)
const CRON_SYNC_PERIOD: Millis = 10_000;

/// Until when the runs created by `at` keep the next from starting: `Forbid` skips every run
/// due before Argo's cron sync has seen them end; one still going at the release, until then.
fn going_until(facts: &Facts, at: Millis, released: Millis) -> Millis {
    facts
        .reconcile_runs
        .iter()
        .filter(|run| run.created <= at)
        .map(|run| {
            run.finished
                .map_or(released, |finished| sync_seen_end(facts, finished))
        })
        .fold(at, Millis::max)
}

/// When Argo's cron sync has seen a run that ended at `finished` end: its next sync, a period
/// later, by a controller that runs. One killed before that syncs at its start, before its
/// informers have the run, and again a period after (the replay of seed 1796670187891798545: a
/// run ended 2 s before the controller was killed; back 38 s later, its first sync left the run
/// active, and `Forbid` skipped the run due 8 s after the restart).
fn sync_seen_end(facts: &Facts, finished: Millis) -> Millis {
    let mut seen = finished + CRON_SYNC_PERIOD;
    while let Some(back) = facts
        .fault_windows
        .iter()
        .filter(|w| w.process == "workflow-controller" && w.from < seen && w.to > finished)
        .map(|w| w.to + CRON_SYNC_PERIOD)
        .filter(|later| *later > seen)
        .max()
    {
        seen = back;
    }
    seen
}

/// When a run was due: Argo names a CronWorkflow's runs after the time they were scheduled
/// for (`NAME-<unix seconds>`), and may create one later than that (its controller's requests
/// held by a slow API server). A name that says no time within an interval before the run was
/// created counts from its creation.
fn due(run: &ReconcileRun, interval: Duration) -> Millis {
    run.name
        .rsplit_once('-')
        .and_then(|(_, seconds)| seconds.parse::<Millis>().ok())
        .and_then(|seconds| seconds.checked_mul(1000))
        .filter(|due| *due <= run.created && run.created - due < interval.as_millis() as Millis)
        .unwrap_or(run.created)
}

/// How long a webhook lost at `since` may wait for reconcile, faults aside: a run that had
/// read GitHub before the change may still be going (the CronWorkflow's `Forbid` skips every
/// run due meanwhile), then up to one interval until the next is due, then that run's own time
/// from when it was due until it delivers (a run delivers one play after another).
fn recovery_bound(facts: &Facts, since: Millis, by: &Writer, released: Millis) -> Duration {
    let going_at_since = going_until(facts, since, released) - since;
    let releasing = match by {
        Writer::Reconcile(name) => facts
            .reconcile_runs
            .iter()
            .find(|run| &run.name == name)
            .map_or(0, |run| {
                (released - due(run, facts.reconcile_interval)).max(0)
            }),
        _ => 0,
    };
    facts.reconcile_interval + Duration::from_millis((going_at_since + releasing) as u64)
}

/// Property 7: each alert fired iff something the controller counted should raise it. A cause
/// counted just before the controller was killed may be lost with its counters; such an alert
/// may fire or not.
fn check_alerts(facts: &Facts, verdict: &mut Verdict) {
    let Some(fired) = &facts.alerts_fired else {
        return;
    };
    for alert in ALERTS {
        let causes: Vec<&AlertCause> = facts
            .alert_causes
            .iter()
            .filter(|cause| cause.alert == alert)
            .collect();
        let observable = causes.iter().find(|cause| {
            cause.at + SCRAPE_GRACE <= facts.alerts_seen_until
                && !facts.fault_windows.iter().any(|w| {
                    w.process == "workflow-controller"
                        && cause.at <= w.from
                        && w.from <= cause.at + SCRAPE_GRACE
                })
        });
        verdict
            .alerts
            .push((alert, fired.contains(alert), causes.len()));
        match (fired.contains(alert), observable) {
            (false, Some(cause)) => verdict.flag(
                6,
                alert,
                format!(
                    "did not fire, though {} ({} causes)",
                    cause.what,
                    causes.len()
                ),
            ),
            (true, _) if causes.is_empty() => {
                verdict.flag(6, alert, "fired without a cause".into())
            }
            _ => {}
        }
    }
    for other in fired.iter().filter(|a| !ALERTS.contains(&a.as_str())) {
        verdict.flag(6, other, "fired, and is no alert of the rules".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::scenario::{AgentPlan, SoakPipeline, Timing};
    use serde_json::json;

    fn plan(task: &str, exit: [i32; 3]) -> PlayPlan {
        let agent = |exit| AgentPlan {
            timing: Timing::OnTime,
            deliveries: 1,
            new_ids: false,
            gap: 0,
            exit,
            send_back: 0,
        };
        PlayPlan {
            task: task.into(),
            repository: "acme/widgets".into(),
            pipeline: SoakPipeline::Play,
            agents: exit.map(agent).to_vec(),
            submit_at: Duration::ZERO,
        }
    }

    fn stage_write(play: &str, at: Millis, stage: &str) -> Write {
        Write {
            at,
            play: play.into(),
            user: "system:serviceaccount:soak:stagectl-stage".into(),
            pod: Some(format!("{play}-update-1")),
            uncertain: false,
            ops: vec![
                json!({"op": "test", "path": "/metadata/labels/current-stage", "value": "x"}),
                json!({"op": "replace", "path": "/metadata/labels/current-stage", "value": stage}),
            ],
        }
    }

    fn resume_write(play: &str, at: Millis, node: &str, workflow: &str) -> Write {
        Write {
            at,
            play: play.into(),
            user: "system:serviceaccount:soak:stage-resume".into(),
            pod: Some(format!("{workflow}-resume-123")),
            uncertain: false,
            ops: vec![
                json!({"op": "test", "path": format!("/status/nodes/{node}/type"), "value": "Suspend"}),
                json!({"op": "replace", "path": format!("/status/nodes/{node}/phase"), "value": "Succeeded"}),
            ],
        }
    }

    /// Task 1's change `kind` on GitHub at `at` (in `repository`, as the agent spelled it), its
    /// webhook `D{id}` sent 100 ms later and accepted, and the stage-resume workflow it started.
    fn happened(facts: &mut Facts, at: Millis, id: usize, kind: &str, repository: &str) {
        facts.changes.push(Change {
            at,
            repository: repository.into(),
            task: "1".into(),
            kind: kind.to_string(),
        });
        facts.deliveries.push(Delivery {
            sent_at: at + 100,
            id: format!("D{id}"),
            repository: "acme/widgets".into(),
            task: "1".into(),
            kind: kind.to_string(),
            answer: "200 success".into(),
        });
        facts.workflows.push(format!("stage-resume-d{id}"));
    }

    /// One play completed by three on-time webhooks, each resuming its wait.
    fn completed_play() -> Facts {
        let name = "play-1-abc";
        let mut facts = Facts {
            reconcile_interval: Duration::from_secs(60),
            ..Facts::default()
        };
        let mut node_names = BTreeMap::new();
        let mut waits = BTreeMap::new();
        let mut at = 1_000;
        for (i, (stage, node, kind)) in SoakPipeline::Play.waits().iter().enumerate() {
            node_names.insert(format!("{name}-{i}"), (node.to_string(), 1));
            waits.insert((stage.to_string(), 1), "Succeeded".to_string());
            facts.writes.push(stage_write(name, at, stage));
            happened(&mut facts, at, i, kind, "Acme/Widgets");
            facts.writes.push(resume_write(
                name,
                at + 500,
                &format!("{name}-{i}"),
                &format!("stage-resume-d{i}"),
            ));
            at += 10_000;
        }
        facts.writes.push(stage_write(name, at, "completed"));
        facts.workflows.push(name.into());
        facts.plays.push(PlayObject {
            name: name.into(),
            plan: plan("1", [0, 0, 0]),
            phase: "Succeeded".into(),
            stage: "completed".into(),
            pass: 1,
            waits,
            node_names,
        });
        facts
    }

    /// A reconcile run, created and finished at these times.
    fn run(name: &str, created: Millis, finished: Millis) -> ReconcileRun {
        ReconcileRun {
            name: name.into(),
            created,
            finished: Some(finished),
            failed: false,
        }
    }

    /// The play of [`completed_play`] whose pull-request webhook was lost, its wait released
    /// at `at` by reconcile run `releasing`, among `runs`.
    fn recovered_by(releasing: &str, at: Millis, runs: Vec<ReconcileRun>) -> Facts {
        let mut facts = completed_play();
        facts.deliveries[0].answer = "dropped".into();
        facts.workflows.push(releasing.into());
        facts.writes[1].pod = Some(releasing.into());
        facts.writes[1].at = at;
        facts.reconcile_runs = runs;
        facts
    }

    fn broken(verdict: &Verdict) -> Vec<&'static str> {
        verdict
            .violations
            .iter()
            .filter(|(_, plays)| !plays.is_empty())
            .map(|(property, _)| *property)
            .collect()
    }

    /// A quiet webhook's latency is split at its stage-resume workflow's creation, its start by
    /// the controller and its pod's start; a release whose workflow is unknown adds no legs.
    #[test]
    fn a_webhooks_latency_is_split_into_its_legs() {
        let mut facts = completed_play();
        let sent = facts.deliveries[0].sent_at;
        facts.stage_resumes.insert(
            "stage-resume-d0".into(),
            ResumeTimes {
                created: sent + 100,
                started: Some(sent + 150),
                pod_started: Some(sent + 200),
            },
        );
        let verdict = check(&facts);
        assert!(verdict.passed(), "{}", verdict.report());
        let ms = Duration::from_millis;
        assert_eq!(
            verdict.legs_quiet,
            [vec![ms(100)], vec![ms(50)], vec![ms(50)], vec![ms(200)]]
        );
    }

    /// The EventSource published the first send and was killed before answering it; GitHub's
    /// redelivery of the same id was accepted later. The release is the play's own event, no
    /// webhook was lost, and its latency runs from the first send.
    #[test]
    fn a_release_by_a_send_whose_answer_was_lost_is_the_plays_own_and_timed_from_that_send() {
        let mut facts = completed_play();
        facts.deliveries[0].answer = "failed: connection reset".into();
        let mut again = facts.deliveries[0].clone();
        again.sent_at += 20_000;
        again.answer = "200 success".into();
        facts.deliveries.push(again);
        let verdict = check(&facts);
        assert!(verdict.passed(), "{}", verdict.report());
        assert_eq!(verdict.webhooks_lost, 0);
        assert!(
            verdict
                .latency_quiet
                .iter()
                .all(|l| *l == Duration::from_millis(400))
        );

        // Never answered at all, never sent again: still its own, still not lost.
        facts.deliveries.pop();
        let verdict = check(&facts);
        assert!(verdict.passed(), "{}", verdict.report());
        assert_eq!(verdict.webhooks_lost, 0);
        assert_eq!(verdict.released_by_unanswered, 1);
    }

    #[test]
    fn a_play_released_once_by_its_own_events_passes() {
        let verdict = check(&completed_play());
        assert!(verdict.passed(), "{}", verdict.report());
        assert_eq!(verdict.waits_released, 3);
        assert_eq!(verdict.latency_quiet.len(), 3);
    }

    #[test]
    fn a_second_release_of_a_wait_is_found() {
        let mut facts = completed_play();
        facts.workflows.push("stage-resume-d9".into());
        facts.deliveries.push(Delivery {
            id: "d9".into(),
            ..facts.deliveries[1].clone()
        });
        facts.writes.push(resume_write(
            "play-1-abc",
            99_000,
            "play-1-abc-1",
            "stage-resume-d9",
        ));
        assert_eq!(broken(&check(&facts)), [PROPERTIES[2]]);
    }

    #[test]
    fn a_release_by_another_tasks_event_is_found() {
        // The wait of approval released by the webhook of another task, or of the same task in
        // another repository, while its own was delivered too.
        for (task, repository) in [("2", "acme/widgets"), ("1", "acme/gadgets")] {
            let mut facts = completed_play();
            let mut foreign = facts.deliveries[2].clone();
            foreign.id = "foreign".into();
            foreign.task = task.into();
            foreign.repository = repository.into();
            facts.deliveries.push(foreign);
            facts.workflows.push("stage-resume-foreign".into());
            facts.writes[5].pod = Some("stage-resume-foreign-resume-1".into());
            assert_eq!(
                broken(&check(&facts)),
                [PROPERTIES[3]],
                "{task} {repository}"
            );
        }
        // Written by hand: no event at all.
        let mut facts = completed_play();
        facts.writes[1].pod = None;
        assert_eq!(broken(&check(&facts)), [PROPERTIES[3]]);
    }

    /// One play that Tess sent back once, on time: pass 1's waits resumed by its own webhooks,
    /// her change request resuming the approval wait and moving the play to `pending` in pass
    /// 2, whose waits are resumed by pass 2's webhooks (Rex's push, Cleo's label again, Tess's
    /// approval).
    fn looped_play() -> Facts {
        let name = "play-1-abc";
        let mut facts = Facts {
            reconcile_interval: Duration::from_secs(60),
            ..Facts::default()
        };
        let mut plan = plan("1", [0, 0, 0]);
        plan.agents[2].send_back = 1;
        let mut node_names = BTreeMap::new();
        let mut waits = BTreeMap::new();
        let mut at = 1_000;
        let mut id = 0;
        for pass in 1..=2_u32 {
            for (i, (stage, node, _)) in SoakPipeline::Play.waits().iter().enumerate() {
                let kind = plan.change_in_pass(i, pass);
                let node_id = format!("{name}-{pass}-{i}");
                node_names.insert(node_id.clone(), (node.to_string(), pass));
                waits.insert((stage.to_string(), pass), "Succeeded".to_string());
                let mut entered = stage_write(name, at, stage);
                if pass == 2 {
                    entered
                        .ops
                        .insert(0, json!({"op": "test", "path": PASS_PATH, "value": "2"}));
                }
                facts.writes.push(entered);
                happened(&mut facts, at, id, kind, "acme/widgets");
                let mut resumed =
                    resume_write(name, at + 500, &node_id, &format!("stage-resume-d{id}"));
                if kind == "changes-requested" {
                    // The send-back: the wait ends, the play goes back, the next pass begins.
                    resumed.ops.extend([
                        json!({"op": "replace", "path": "/metadata/labels/current-stage", "value": "pending"}),
                        json!({"op": "add", "path": PASS_PATH, "value": "2"}),
                    ]);
                }
                facts.writes.push(resumed);
                at += 10_000;
                id += 1;
            }
        }
        let mut completed = stage_write(name, at, "completed");
        completed
            .ops
            .insert(0, json!({"op": "test", "path": PASS_PATH, "value": "2"}));
        facts.writes.push(completed);
        facts.workflows.push(name.into());
        facts.plays.push(PlayObject {
            name: name.into(),
            plan,
            phase: "Succeeded".into(),
            stage: "completed".into(),
            pass: 2,
            waits,
            node_names,
        });
        facts
    }

    #[test]
    fn a_play_sent_back_once_and_released_by_each_passs_own_events_passes() {
        let verdict = check(&looped_play());
        assert!(verdict.passed(), "{}", verdict.report());
        assert_eq!(verdict.waits_released, 6);
    }

    #[test]
    fn an_event_of_an_earlier_pass_releasing_a_later_one_is_found() {
        // Cleo's label of pass 1, redelivered, released pass 2's wait for it.
        let mut facts = looped_play();
        let qa_of_pass_two = facts
            .writes
            .iter()
            .position(|w| w.pod.as_deref() == Some("stage-resume-d4-resume-123"))
            .unwrap();
        facts.writes[qa_of_pass_two].pod = Some("stage-resume-d1-resume-9".into());
        facts.deliveries.push(Delivery {
            sent_at: 40_000,
            ..facts.deliveries[1].clone()
        });
        assert_eq!(broken(&check(&facts)), [PROPERTIES[3]]);

        // Planned to loop, it ended in its first pass.
        let mut facts = looped_play();
        facts.plays[0].pass = 1;
        assert!(broken(&check(&facts)).contains(&PROPERTIES[0]));
    }

    #[test]
    fn a_skipped_or_repeated_stage_and_an_unplanned_end_are_found() {
        let mut facts = completed_play();
        facts.writes.remove(2);
        assert_eq!(broken(&check(&facts)), [PROPERTIES[1]]);
        let mut facts = completed_play();
        facts
            .writes
            .push(stage_write("play-1-abc", 1, "waiting-pr-created"));
        assert_eq!(broken(&check(&facts)), [PROPERTIES[1]]);
        let mut facts = completed_play();
        facts.plays[0].plan = plan("1", [0, 3, 0]);
        let found = broken(&check(&facts));
        assert!(
            found.contains(&PROPERTIES[0]) && found.contains(&PROPERTIES[2]),
            "{found:?}"
        );
    }

    #[test]
    fn a_lost_webhook_must_be_recovered_by_reconcile_within_an_interval() {
        let mut facts = completed_play();
        facts.deliveries[0].answer = "dropped".into();
        assert_eq!(broken(&check(&facts)), [PROPERTIES[3], PROPERTIES[5]]);
        facts.workflows.push("stagectl-reconcile-1700000000".into());
        facts.writes[1].pod = Some("stagectl-reconcile-1700000000".into());
        facts.reconcile_runs = vec![run("stagectl-reconcile-1700000000", 2_000, 12_000)];
        let verdict = check(&facts);
        assert!(verdict.passed(), "{}", verdict.report());
        assert_eq!(verdict.webhooks_lost, 1);
        assert_eq!(verdict.recovered_by_reconcile, 1);
        // Released by a run that started 80 s later than it could have.
        facts.writes[1].at += 80_000;
        facts.reconcile_runs[0].created += 80_000;
        facts.reconcile_runs[0].finished = Some(facts.writes[1].at + 1_000);
        assert_eq!(broken(&check(&facts)), [PROPERTIES[5]]);
        // Unless the controller was down meanwhile: no run could start.
        facts.fault_windows.push(Downtime {
            process: "workflow-controller".into(),
            from: 5_000,
            to: 35_000,
        });
        assert!(check(&facts).passed(), "{}", check(&facts).report());
    }

    /// A run that ended just before the controller was killed stays on the CronWorkflow's active
    /// list until a sync period after the controller is back: the run due meanwhile is skipped
    /// (`Forbid`), and the one after it recovers the wait within the bound.
    #[test]
    fn a_run_ended_before_the_controller_was_killed_blocks_the_next_until_it_is_back() {
        let releasing = "stagectl-reconcile-105";
        let runs = vec![
            run("stagectl-reconcile-0", 500, 900),
            run(releasing, 105_500, 106_500),
        ];
        let mut facts = recovered_by(releasing, 106_000, runs.clone());
        facts.fault_windows.push(Downtime {
            process: "workflow-controller".into(),
            from: 950,
            to: 40_000,
        });
        assert!(check(&facts).passed(), "{}", check(&facts).report());
        // The controller down as long, but after the sync that saw the run end: the run due
        // after it is back had nothing before it, and the one after is late.
        facts.fault_windows[0] = Downtime {
            process: "workflow-controller".into(),
            from: 11_000,
            to: 40_000,
        };
        assert_eq!(broken(&check(&facts)), [PROPERTIES[5]]);
    }

    /// Found by the replay of seed 1796788810501410503: an API server slowed to 2.1 s a request
    /// held the controller's creation of the run due an interval after the last window (the
    /// API server killed) by 2 s; that run recovered 19 lost webhooks at once. A run is bounded
    /// from when it was due, its name says; a run due an interval later still is not within it.
    #[test]
    fn a_run_the_controller_created_late_is_bounded_from_when_it_was_due() {
        let releasing = "stagectl-reconcile-94";
        let mut facts = recovered_by(releasing, 97_600, vec![run(releasing, 97_100, 98_000)]);
        facts.fault_windows.push(Downtime {
            process: "apiserver".into(),
            from: 5_000,
            to: 35_000,
        });
        assert!(check(&facts).passed(), "{}", check(&facts).report());
        // Counted from its creation, it would be late.
        let unnamed = "stagectl-reconcile-unscheduled";
        let mut counted_from_creation =
            recovered_by(unnamed, 97_600, vec![run(unnamed, 97_100, 98_000)]);
        counted_from_creation.fault_windows = facts.fault_windows.clone();
        assert_eq!(broken(&check(&counted_from_creation)), [PROPERTIES[5]]);
        // The run due next, an interval later: not within the bound.
        let later = "stagectl-reconcile-154";
        facts = recovered_by(later, 157_600, vec![run(later, 157_100, 158_000)]);
        facts.fault_windows = counted_from_creation.fault_windows;
        assert_eq!(broken(&check(&facts)), [PROPERTIES[5]]);
    }

    /// Found by the tenth full soak (seed 1796185348787163811): GitHub's rate limit ran out
    /// after the change and came back seconds after the next run was due, which failed; the run
    /// after it released the wait. The wait is bounded from the window's end, not by the
    /// window's length: an interval and that run's own time.
    #[test]
    fn a_window_that_fails_the_next_run_restarts_the_wait_at_its_end() {
        let releasing = "stagectl-reconcile-1700000120";
        let mut facts = recovered_by(
            releasing,
            121_500,
            vec![
                run("stagectl-reconcile-1700000060", 61_000, 62_000),
                run(releasing, 121_000, 122_000),
            ],
        );
        facts.fault_windows.push(Downtime {
            process: GITHUB_RATE_LIMIT.into(),
            from: 11_000,
            to: 65_000,
        });
        assert!(check(&facts).passed(), "{}", check(&facts).report());
        // A run an interval later still: not within the bound.
        facts.reconcile_runs[1] = run(releasing, 181_000, 182_000);
        facts.writes[1].at = 181_500;
        assert_eq!(broken(&check(&facts)), [PROPERTIES[5]]);
    }

    /// Found by the thirteenth full soak (seed 1796203216183403887): the run due after the
    /// change met three connection resets and a stall (each tried again), then GitHub's rate
    /// limit, used up 20 s after the run was due, and stopped (exit 6); the next run found it
    /// still used up for 7 s and stopped too; the third released the wait. A window that begins
    /// while the run due next is still going restarts the wait at its end; one that begins
    /// after that run has ended does not.
    #[test]
    fn a_window_that_begins_while_the_next_run_is_going_restarts_the_wait_at_its_end() {
        let releasing = "stagectl-reconcile-1700000180";
        let mut facts = recovered_by(
            releasing,
            181_500,
            vec![
                run("stagectl-reconcile-1700000060", 60_000, 85_000),
                run("stagectl-reconcile-1700000120", 120_000, 121_000),
                run(releasing, 180_000, 182_000),
            ],
        );
        facts.fault_windows.push(Downtime {
            process: GITHUB_RATE_LIMIT.into(),
            from: 80_000,
            to: 127_000,
        });
        assert!(check(&facts).passed(), "{}", check(&facts).report());
        // The same window after the run due next had ended: that run could have released it.
        facts.fault_windows[0].from = 90_000;
        assert_eq!(broken(&check(&facts)), [PROPERTIES[5]]);
    }

    /// Found by the thirteenth full soak: the run going at the change ended 5 s before the next
    /// was due, and Argo skipped that one all the same (`Forbid`, its active list synced every
    /// 10 s); the run after it released the wait.
    #[test]
    fn a_run_ended_less_than_the_cron_sync_before_the_next_is_due_may_skip_it() {
        let releasing = "stagectl-reconcile-1700000120";
        let mut facts = recovered_by(
            releasing,
            121_000,
            vec![
                run("stagectl-reconcile-1700000000", 500, 55_000),
                run(releasing, 120_000, 122_000),
            ],
        );
        assert!(check(&facts).passed(), "{}", check(&facts).report());
        // Ended well before the next was due: that run should have come, and released it.
        facts.reconcile_runs[0].finished = Some(40_000);
        assert_eq!(broken(&check(&facts)), [PROPERTIES[5]]);
    }

    /// Found by the fifteenth full soak (seed 1796130397398084410): the run going at the change
    /// went on past the next minute, so `Forbid` skipped that run; the run after it, due
    /// within an interval of the first one's end, met GitHub's rate limit used up, which began
    /// more than an interval after the change; the next run released the wait.
    #[test]
    fn a_window_that_fails_the_run_due_after_a_skipped_one_restarts_the_wait_at_its_end() {
        let releasing = "stagectl-reconcile-1700000180";
        let mut facts = recovered_by(
            releasing,
            181_500,
            vec![
                run("stagectl-reconcile-1700000000", 500, 70_000),
                ReconcileRun {
                    failed: true,
                    ..run("stagectl-reconcile-1700000120", 120_000, 125_000)
                },
                run(releasing, 180_000, 182_000),
            ],
        );
        facts.fault_windows.push(Downtime {
            process: GITHUB_RATE_LIMIT.into(),
            from: 116_000,
            to: 153_000,
        });
        assert!(check(&facts).passed(), "{}", check(&facts).report());
        // Without the limit, the run of 120 s should have released it.
        facts.fault_windows.clear();
        assert_eq!(broken(&check(&facts)), [PROPERTIES[5]]);
    }

    /// Found by the fourteenth full soak (seed 1796122765076223178): the run due after the
    /// change met five 502s, a stall, and a stall again, gave up when its minute was spent,
    /// and the CronWorkflow skipped the run due while it went on; the run after released the
    /// wait. GitHub was down for that run as surely as the rate limit makes it, and the wait
    /// starts again at its end.
    #[test]
    fn a_run_github_failed_until_its_budget_was_spent_restarts_the_wait_at_its_end() {
        let releasing = "stagectl-reconcile-1700000180";
        let mut facts = recovered_by(
            releasing,
            190_000,
            vec![
                run("stagectl-reconcile-1700000000", 500, 30_000),
                ReconcileRun {
                    failed: true,
                    ..run("stagectl-reconcile-1700000060", 60_000, 131_000)
                },
                run(releasing, 180_000, 200_000),
            ],
        );
        let request = |at, faulted| GitHubRequest { at, faulted };
        facts.github_requests = vec![
            request(62_000, false),
            request(70_000, true),
            request(71_000, true),
            request(72_500, true),
            request(76_000, true),
            request(81_500, true),
            request(97_000, true),
            request(123_000, true),
        ];
        assert!(check(&facts).passed(), "{}", check(&facts).report());
        // A run that gave up on the first fault, seconds into its budget, should have ridden
        // through it: the next run was due a minute after the change.
        facts.github_requests.truncate(2);
        facts.reconcile_runs[1].finished = Some(72_000);
        assert_eq!(broken(&check(&facts)), [PROPERTIES[5]]);
        // Nor is a run excused whose last answer was a good one.
        facts.github_requests = vec![request(70_000, true), request(125_000, false)];
        facts.reconcile_runs[1].finished = Some(131_000);
        assert_eq!(broken(&check(&facts)), [PROPERTIES[5]]);
    }

    /// Found by a full soak (seed 1796143283514985848): a run that had read GitHub before the
    /// change went on for two minutes delivering a backlog, the CronWorkflow skipped the runs due
    /// meanwhile, and the next run delivered this play late in its own backlog. Each wait is
    /// still bounded: the run going at the change, an interval, the releasing run's time to it.
    #[test]
    fn a_lost_webhook_may_wait_for_the_run_going_at_its_change_and_the_next_runs_backlog() {
        let releasing = "stagectl-reconcile-1700000120";
        // The change at 1.0 s; released at 250 s.
        let mut facts = recovered_by(
            releasing,
            250_000,
            vec![
                run("stagectl-reconcile-1700000000", 500, 130_000),
                run(releasing, 150_000, 260_000),
            ],
        );
        assert!(check(&facts).passed(), "{}", check(&facts).report());
        // Released by a run created more than an interval after the first ended (and Argo's
        // cron sync saw it end): not within the bound.
        facts.writes[1].at = 300_000;
        facts.reconcile_runs[1].finished = Some(310_000);
        facts.reconcile_runs[1].created = 215_000;
        assert_eq!(broken(&check(&facts)), [PROPERTIES[5]]);
    }

    #[test]
    fn an_alert_must_fire_iff_something_should_raise_it() {
        let mut facts = completed_play();
        facts.alerts_fired = Some(BTreeSet::new());
        facts.alerts_seen_until = 1_000_000;
        assert!(check(&facts).passed());
        facts.alert_causes.push(AlertCause {
            alert: "PlayWebhookLost",
            at: 50_000,
            what: "run r recovered 1".into(),
        });
        assert_eq!(broken(&check(&facts)), [PROPERTIES[6]]);
        // Unless the controller died before Prometheus could scrape the count.
        facts.fault_windows.push(Downtime {
            process: "workflow-controller".into(),
            from: 55_000,
            to: 60_000,
        });
        assert!(check(&facts).passed());
        facts.alerts_fired = Some(["PlayWebhookLost".to_string()].into());
        assert!(check(&facts).passed());
        facts.alerts_fired = Some(["StagectlReconcileFailing".to_string()].into());
        assert_eq!(broken(&check(&facts)), [PROPERTIES[6]]);
    }

    /// The server committed the change to waiting-ready-for-qa and answered 503, logging no
    /// body; the stage-resume that then tests that stage proves it. Without that proof, the
    /// stage is skipped.
    #[test]
    fn a_stage_change_answered_5xx_counts_where_a_later_write_proves_it() {
        let mut facts = completed_play();
        let index = facts
            .writes
            .iter()
            .position(|w| w.ops[1]["value"] == "waiting-ready-for-qa")
            .unwrap();
        let mut lost = facts.writes[index].clone();
        lost.ops.clear();
        lost.uncertain = true;
        facts.writes[index] = lost;
        // The resume of that stage tests the stage, as stagectl's do.
        let resume = &mut facts.writes[index + 1];
        resume.ops.insert(
            0,
            json!({"op": "test", "path": "/metadata/labels/current-stage", "value": "waiting-ready-for-qa"}),
        );
        assert!(check(&facts).passed(), "{}", check(&facts).report());
        facts.writes[index + 1].ops.remove(0);
        assert_eq!(broken(&check(&facts)), [PROPERTIES[1]]);
    }

    /// An early event's latch committed and answered 503 without a body in the log; the `set`
    /// that enters the stage tests the latch holding that event, which proves it. Without that
    /// test the wait was never released.
    #[test]
    fn a_latch_answered_5xx_counts_where_the_set_that_honours_it_proves_it() {
        let mut facts = completed_play();
        let name = facts.plays[0].name.clone();
        let stage = "waiting-ready-for-qa";
        let enters = facts
            .writes
            .iter()
            .position(|w| w.ops[1]["value"] == stage)
            .unwrap();
        // The resume after it becomes a latch before it, lost in a 503.
        let mut latch = facts.writes.remove(enters + 1);
        latch.at = facts.writes[enters].at - 200;
        latch.ops.clear();
        latch.uncertain = true;
        facts.deliveries[1].sent_at = latch.at - 100;
        facts.changes[1].at = latch.at - 300;
        facts.writes.insert(enters, latch);
        let record = json!({"deliveryId": "d1", "event": "pull_request"}).to_string();
        // As stagectl's set does, it tests the stage it leaves.
        facts.writes[enters + 1].ops[0]["value"] = json!("waiting-pr-created");
        facts.writes[enters + 1].ops.insert(
            1,
            json!({"op": "test", "path": latch_path(stage), "value": record}),
        );
        facts.plays[0]
            .waits
            .insert((stage.into(), 1), "Skipped".into());
        assert!(check(&facts).passed(), "{}", check(&facts).report());
        facts.writes[enters + 1].ops.remove(1);
        assert_eq!(broken(&check(&facts)), [PROPERTIES[2]], "{name}");
    }

    /// The last change, to completed, answered 5xx with nothing after it: the play's stage on
    /// the server proves it, and only that.
    #[test]
    fn a_last_stage_change_answered_5xx_counts_where_the_plays_stage_proves_it() {
        let mut facts = completed_play();
        let last = facts.writes.len() - 1;
        facts.writes[last].ops.clear();
        facts.writes[last].uncertain = true;
        assert!(check(&facts).passed(), "{}", check(&facts).report());
        facts.plays[0].stage = "waiting-pr-approved".into();
        assert!(broken(&check(&facts)).contains(&PROPERTIES[1]));
    }

    /// Reconcile's resume of the approval wait committed, and the server was killed before it
    /// logged the answer: the log holds only the request's arrival. The wait node, Succeeded,
    /// proves it; without that node the wait was never released.
    #[test]
    fn a_resume_never_answered_counts_where_its_wait_node_proves_it() {
        let mut facts = completed_play();
        let last_resume = facts.writes.len() - 2;
        let run = "stagectl-reconcile-1796188380".to_string();
        facts.workflows.push(run.clone());
        // As stagectl's set does, the change to completed tests the stage it leaves.
        facts.writes[last_resume + 1].ops[0]["value"] = json!("waiting-pr-approved");
        let lost = &mut facts.writes[last_resume];
        lost.ops.clear();
        lost.uncertain = true;
        lost.pod = Some(run.clone());
        // The webhook's every send was lost: reconcile recovered it.
        facts.deliveries[2].answer = "dropped".into();
        facts.reconcile_runs.push(ReconcileRun {
            name: run,
            created: lost.at - 1_000,
            finished: Some(lost.at + 1_000),
            failed: false,
        });
        assert!(check(&facts).passed(), "{}", check(&facts).report());
        facts.plays[0]
            .waits
            .insert(("waiting-pr-approved".into(), 1), "Suspend Running".into());
        assert!(broken(&check(&facts)).contains(&PROPERTIES[2]));
    }

    #[test]
    fn a_wait_node_that_disagrees_with_its_release_is_found() {
        let mut facts = completed_play();
        facts.plays[0]
            .waits
            .insert(("waiting-ready-for-qa".into(), 1), "Skipped".into());
        assert_eq!(broken(&check(&facts)), [PROPERTIES[4]]);
    }
}
