//! The soak's nemesis and its kubelet. The nemesis carries out the scenario's faults at their
//! times: kill -9 of a process (and how long it stays down), GitHub's REST API failing. The
//! supervisor restarts every process that is not running once its downtime is over, as a
//! kubelet restarts a pod's container — also one that exited on its own, which the run reports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::checker::{Downtime, GITHUB_RATE_LIMIT, Millis};
use super::scenario::{Fault, FaultKind, Process};
use crate::e2e::RECONCILE_CRON;
use crate::harness::{GitHubStandIn, repo_path};

/// Where the processes of the run keep their pid files, and how to start them again.
#[derive(Clone, Debug)]
pub struct Processes {
    pub controlplane_dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub namespace: String,
    pub events_state: PathBuf,
    pub stagectl: PathBuf,
    /// The pods of the pipeline's Sensors, and the directory of its manifests.
    pub sensors: &'static [&'static str],
    pub pipeline_dir: PathBuf,
}

/// The processes the supervisor keeps running, in the order it starts them: the API server
/// first, as everything else needs it.
fn supervised(sensors: &[&'static str]) -> Vec<Supervised> {
    let mut all = vec![
        Supervised::Process(Process::ApiServer),
        Supervised::Process(Process::Controller),
        Supervised::PodRunner,
        Supervised::Process(Process::Nats),
        Supervised::Process(Process::EventSource),
    ];
    all.extend(
        sensors
            .iter()
            .map(|name| Supervised::Process(Process::Sensor(name))),
    );
    all
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Supervised {
    Process(Process),
    /// Not a fault of the scenario (it stands for the kubelet), but restarted if it dies.
    PodRunner,
}

impl Processes {
    fn pid_file(&self, which: Supervised) -> PathBuf {
        let e2e = self.controlplane_dir.join("e2e");
        match which {
            Supervised::Process(Process::ApiServer) => self.controlplane_dir.join("pid"),
            Supervised::Process(Process::Controller) => e2e.join("workflow-controller.pid"),
            Supervised::PodRunner => e2e.join("podrunner.pid"),
            Supervised::Process(events) => self.events_state.join(format!("{}.pid", events.name())),
        }
    }

    fn controller_log(&self) -> PathBuf {
        self.controlplane_dir.join("e2e/workflow-controller.log")
    }

    fn pid(&self, which: Supervised) -> Option<u32> {
        std::fs::read_to_string(self.pid_file(which))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn alive(&self, which: Supervised) -> bool {
        self.pid(which)
            .is_some_and(|pid| crate::harness::process_running(&pid.to_string()))
    }

    /// kill -9 of the process and everything in its session, as a node failure would.
    async fn kill(&self, process: Process) {
        let which = Supervised::Process(process);
        let Some(pid) = self.pid(which) else {
            return;
        };
        // Already gone is as good.
        let _ = tokio::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.alive(which) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the process again through the script that started it; true when it came up.
    async fn start(&self, which: Supervised) -> bool {
        let mut command = match which {
            Supervised::Process(Process::ApiServer) => {
                tokio::process::Command::new(repo_path("tests/controlplane/start"))
            }
            Supervised::Process(Process::Controller) | Supervised::PodRunner => {
                let mut command = tokio::process::Command::new(repo_path("tests/e2e/start"));
                command.env("STAGECTL_BIN", &self.stagectl);
                command
            }
            Supervised::Process(events) => {
                let mut command = tokio::process::Command::new(repo_path("tests/events/start"));
                command
                    .env("KUBECONFIG", &self.kubeconfig)
                    .env("EVENTS_MANIFESTS", &self.pipeline_dir)
                    .args([&self.namespace, events.name()]);
                command
            }
        };
        command
            .env("STAGECTL_CONTROLPLANE_DIR", &self.controlplane_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        matches!(
            tokio::time::timeout(Duration::from_secs(180), command.status()).await,
            Ok(Ok(status)) if status.success()
        )
    }
}

/// The fault window of a slow API server, as the checker sees it.
pub const SLOW_APISERVER: &str = "apiserver (slow)";

/// When the faults that last a while end.
#[derive(Default)]
struct Ends {
    /// Since when (for its window) and until when GitHub's rate limit is used up.
    limited: Option<Millis>,
    rate_limit: Option<Instant>,
    /// Since when (for its window) and until when the API server is slow.
    slow: Option<Millis>,
    slow_until: Option<Instant>,
}

/// What the run saw happen to its processes, for the report.
#[derive(Debug, Default)]
pub struct Log {
    /// Faults carried out, by kind.
    pub injected: BTreeMap<String, usize>,
    /// When each kill's process was down, until it was up again, and when the API server was
    /// slow.
    pub windows: Vec<Downtime>,
    /// Processes that exited without a fault, and were restarted.
    pub exited_on_their_own: BTreeMap<String, usize>,
    /// Restarts that failed at first (tried again).
    pub failed_starts: usize,
    /// What the nemesis and the supervisor did, in order, with the time since the start.
    pub timeline: Vec<String>,
    /// The start.
    pub began: Millis,
}

pub fn now_millis() -> Millis {
    jiff::Timestamp::now().as_millisecond()
}

#[derive(Default)]
struct Shared {
    /// When the run began, for the timeline.
    start: Option<Instant>,
    /// A killed process stays down until then.
    down_until: BTreeMap<Process, Instant>,
    /// Killed by the nemesis at this time and not yet started again.
    killed_at: BTreeMap<Process, Millis>,
    /// Found not running without a fault, at this time, and not yet started again.
    found_dead: BTreeMap<Process, Millis>,
    /// How long the controller's log was when the run began.
    controller_log_from: u64,
    log: Log,
}

pub struct Nemesis {
    processes: Processes,
    shared: Arc<Mutex<Shared>>,
}

impl Nemesis {
    pub fn new(processes: Processes) -> Self {
        Self {
            processes,
            shared: Arc::default(),
        }
    }

    /// Carries out the faults at their times from `start`; returns when the last has ended.
    pub async fn inject(&self, faults: &[Fault], start: Instant, github: &GitHubStandIn) {
        {
            let mut shared = self.shared.lock().unwrap();
            shared.start = Some(start);
            shared.log.began = now_millis() - start.elapsed().as_millis() as Millis;
        }
        // Faults that last a while end at their time, or at the end of a later one of the same
        // kind that overlaps them.
        let mut ends = Ends::default();
        for fault in faults {
            self.end_due(&mut ends, start + fault.at, github).await;
            tokio::time::sleep_until(start + fault.at).await;
            self.shared
                .lock()
                .unwrap()
                .log
                .injected
                .entry(fault.kind.label())
                .and_modify(|n| *n += 1)
                .or_insert(1);
            self.note(format!("{:?} for {:?}", fault.kind, fault.downtime));
            let until = Instant::now() + fault.downtime;
            match fault.kind {
                FaultKind::Kill(process) => {
                    {
                        let mut shared = self.shared.lock().unwrap();
                        let entry = shared.down_until.entry(process).or_insert(until);
                        *entry = (*entry).max(until);
                        shared.killed_at.entry(process).or_insert_with(now_millis);
                    }
                    self.processes.kill(process).await;
                }
                FaultKind::GitHub5xx(n) => github.faults(&vec!["502"; n as usize]).await,
                FaultKind::GitHubReset(n) => github.faults(&vec!["reset"; n as usize]).await,
                FaultKind::GitHubStall => github.faults(&["stall"]).await,
                FaultKind::GitHubSecondaryLimit(after) => {
                    github.faults(&[&format!("secondary:{after}")]).await
                }
                FaultKind::GitHubRateLimit => {
                    let reset =
                        jiff::Timestamp::now().as_second() + fault.downtime.as_secs() as i64;
                    github
                        .set(json!({"rateLimit": {"limit": 5000, "remaining": 0, "reset": reset}}))
                        .await;
                    ends.rate_limit = ends.rate_limit.max(Some(until));
                    ends.limited.get_or_insert(now_millis());
                }
                FaultKind::SlowApiServer(millis) => {
                    crate::harness::set_latency(
                        &self.processes.controlplane_dir,
                        Some(Duration::from_millis(millis)),
                    );
                    ends.slow.get_or_insert(now_millis());
                    ends.slow_until = ends.slow_until.max(Some(until));
                }
            }
        }
        self.end_due(
            &mut ends,
            Instant::now() + Duration::from_secs(3600),
            github,
        )
        .await;
    }

    /// Ends, in time order, what lasts until before `next`.
    async fn end_due(&self, ends: &mut Ends, next: Instant, github: &GitHubStandIn) {
        loop {
            let due = [ends.rate_limit, ends.slow_until]
                .into_iter()
                .flatten()
                .filter(|end| *end <= next)
                .min();
            let Some(due) = due else { return };
            tokio::time::sleep_until(due).await;
            if ends.rate_limit == Some(due) {
                ends.rate_limit = None;
                github
                    .set(json!({"rateLimit": {"limit": 5000, "remaining": 5000, "reset": 0}}))
                    .await;
                let from = ends.limited.take().unwrap_or_else(now_millis);
                self.window(GITHUB_RATE_LIMIT, from);
                self.note("github rate limit reset".into());
            }
            if ends.slow_until == Some(due) {
                ends.slow_until = None;
                crate::harness::set_latency(&self.processes.controlplane_dir, None);
                let from = ends.slow.take().unwrap_or_else(now_millis);
                self.window(SLOW_APISERVER, from);
                self.note("apiserver fast again".into());
            }
        }
    }

    /// One look of the kubelet at one process: started if it is not running and may run. True
    /// when it runs.
    async fn supervise_one(&self, which: Supervised) -> bool {
        if self.processes.alive(which) {
            self.running_again(which);
            return true;
        }
        let process = match which {
            Supervised::Process(process) => Some(process),
            Supervised::PodRunner => None,
        };
        if let Some(process) = process {
            let mut shared = self.shared.lock().unwrap();
            if !shared.killed_at.contains_key(&process) {
                // Down without a fault: its window runs from when it was found so.
                shared.found_dead.entry(process).or_insert_with(now_millis);
            }
        }
        let waiting = process.is_some_and(|p| {
            self.shared
                .lock()
                .unwrap()
                .down_until
                .get(&p)
                .is_some_and(|until| Instant::now() < *until)
        });
        let needs_server = which != Supervised::Process(Process::ApiServer)
            && !self
                .processes
                .alive(Supervised::Process(Process::ApiServer));
        if waiting || needs_server {
            return false;
        }
        let started = self.processes.start(which).await;
        self.note(format!(
            "{which:?} {}",
            if started { "started" } else { "did not start" }
        ));
        if !started {
            self.shared.lock().unwrap().log.failed_starts += 1;
            return false;
        }
        self.ran_again(which);
        false
    }

    /// A process found running while its window is open: a start that reported failure (its
    /// script gave up waiting for it, say under a slow API server) may still have left it
    /// running, and nothing starts it again. Its window ends when it is first seen so, once its
    /// downtime is over (until then a killed process may still be exiting). Without this the
    /// window stayed open, so it was never recorded: the replay of seed
    /// 1592594138,1796771058873725304 flagged lost webhooks recovered late that were on time,
    /// the controller having been away for a minute the checker did not know of.
    fn running_again(&self, which: Supervised) {
        let Supervised::Process(process) = which else {
            return;
        };
        {
            let shared = self.shared.lock().unwrap();
            let open =
                shared.killed_at.contains_key(&process) || shared.found_dead.contains_key(&process);
            let down = shared
                .down_until
                .get(&process)
                .is_some_and(|until| Instant::now() < *until);
            if !open || down {
                return;
            }
        }
        self.note(format!("{which:?} found running"));
        self.ran_again(which);
    }

    /// Closes the window of a process that runs again; one that was not killed exited on its
    /// own.
    fn ran_again(&self, which: Supervised) {
        let process = match which {
            Supervised::Process(process) => Some(process),
            Supervised::PodRunner => None,
        };
        let mut shared = self.shared.lock().unwrap();
        let killed = process.and_then(|p| shared.killed_at.remove(&p));
        let found_dead = process.and_then(|p| shared.found_dead.remove(&p));
        if killed.is_none() {
            let name = match which {
                Supervised::Process(p) => p.name(),
                Supervised::PodRunner => "podrunner",
            };
            *shared
                .log
                .exited_on_their_own
                .entry(name.into())
                .or_default() += 1;
        }
        if let (Some(process), Some(from)) = (process, killed.or(found_dead)) {
            shared.log.windows.push(Downtime {
                process: process.name().into(),
                from,
                to: now_millis(),
            });
        }
    }

    /// Kills Argo's controller and starts it again before the run, so that its counters (and
    /// so Prometheus's alerts) hold this run's counts only, not earlier tests'.
    pub async fn fresh_controller(&self) {
        let controller = Supervised::Process(Process::Controller);
        self.processes.kill(Process::Controller).await;
        let deadline = Instant::now() + Duration::from_secs(300);
        while !(self.processes.start(controller).await && self.processes.alive(controller)) {
            assert!(
                Instant::now() < deadline,
                "Argo's controller did not start again within 5 minutes"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.shared.lock().unwrap().controller_log_from =
            crate::harness::file_end(&self.processes.controller_log());
    }

    /// One pass over every process at once, as a kubelet restarts each container on its own: a
    /// start that hangs (the event processes' while NATS or the API server is down) holds up no
    /// other. True when everything runs.
    pub async fn supervise_once(&self) -> bool {
        futures::future::join_all(
            supervised(self.processes.sensors)
                .into_iter()
                .map(|which| self.supervise_one(which)),
        )
        .await
        .into_iter()
        .all(|up| up)
    }

    /// Supervises until `stop` is set.
    pub async fn supervise(&self, stop: &std::sync::atomic::AtomicBool) {
        futures::future::join_all(supervised(self.processes.sensors).into_iter().map(
            |which| async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    self.supervise_one(which).await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
        ))
        .await;
    }

    /// Once the faults are over: every process running again.
    pub async fn heal(&self) {
        self.shared.lock().unwrap().down_until.clear();
        let deadline = Instant::now() + Duration::from_secs(300);
        while !self.supervise_once().await {
            assert!(
                Instant::now() < deadline,
                "the processes did not all run again within 5 minutes"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A fault window from `from` until now, for the checker.
    fn window(&self, what: &str, from: Millis) {
        self.shared.lock().unwrap().log.windows.push(Downtime {
            process: what.into(),
            from,
            to: now_millis(),
        });
    }

    fn note(&self, event: String) {
        let mut shared = self.shared.lock().unwrap();
        let since = shared
            .start
            .map_or(0.0, |start| start.elapsed().as_secs_f64());
        shared.log.timeline.push(format!("{since:>8.1}s  {event}"));
    }

    pub fn log(&self) -> Log {
        let mut shared = self.shared.lock().unwrap();
        let away = ControllerAway::read(
            &crate::harness::read_since(
                &self.processes.controller_log(),
                shared.controller_log_from,
            ),
            &format!("{}/{RECONCILE_CRON}", self.processes.namespace),
        );
        let name = Process::Controller.name();
        if away.exits > 0 {
            *shared
                .log
                .exited_on_their_own
                .entry(name.into())
                .or_default() += away.exits;
        }
        shared
            .log
            .windows
            .extend(away.windows.iter().map(|&(from, to)| Downtime {
                process: name.into(),
                from,
                to,
            }));
        away.last_until_scheduled(&mut shared.log.windows);
        std::mem::take(&mut shared.log)
    }
}

/// When Argo's controller was away on its own, from its log: it stops leading when it cannot
/// renew its lease, exits, and tests/e2e/restart-always starts it again (logging each exit, with
/// its time) until it leads once more. A kill -9 by the nemesis is not in the log; the
/// supervisor has that window.
///
/// Either window lasts, for reconcile, until the controller has the reconcile CronWorkflow on
/// its schedule again: a run due before that is not made up (the CronWorkflow sets no starting
/// deadline), and the controller takes seconds after it starts, or after "new leader", to get
/// there — longer under a slow API server. (The twelfth full soak's finding: windows that ended
/// at the restart flagged recoveries up to a minute late that were on time.)
#[derive(Debug, Default, PartialEq)]
struct ControllerAway {
    exits: usize,
    windows: Vec<(Millis, Millis)>,
    /// When the controller put the CronWorkflow on its schedule (after each start, and again
    /// after each change of the object).
    scheduled: Vec<Millis>,
}

impl ControllerAway {
    /// Each of the controller's windows ends no sooner than the controller next put the
    /// CronWorkflow on its schedule.
    fn last_until_scheduled(&self, windows: &mut [Downtime]) {
        for window in windows
            .iter_mut()
            .filter(|w| w.process == Process::Controller.name())
        {
            if let Some(at) = self.scheduled.iter().find(|at| **at >= window.from) {
                window.to = window.to.max(*at);
            }
        }
    }

    /// `cron`: the CronWorkflow's key, namespace/name.
    fn read(log: &str, cron: &str) -> Self {
        let mut away = Self::default();
        let mut left: Option<Millis> = None;
        let millis = |time: &str| {
            time.parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .ok()
        };
        for line in log.lines() {
            let (leaving, leading) = if let Some(exit) = line.strip_prefix("restart-always: ") {
                away.exits += 1;
                (exit.split(' ').next().and_then(millis), None)
            } else if let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) {
                let time = entry["time"].as_str().and_then(millis);
                match entry["msg"].as_str() {
                    Some("stopped leading") => (time, None),
                    Some("new leader") => (None, time),
                    // v4.0 says "CronWorkflow added", v3.7 "CronWorkflow <key> added".
                    Some(msg)
                        if entry["cronWorkflow"] == cron
                            && (msg == "CronWorkflow added"
                                || msg == format!("CronWorkflow {cron} added")) =>
                    {
                        away.scheduled.extend(time);
                        (None, None)
                    }
                    _ => (None, None),
                }
            } else {
                (None, None)
            };
            if let Some(at) = leaving {
                left.get_or_insert(at);
            }
            if let (Some(to), Some(from)) = (leading, left) {
                away.windows.push((from, to));
                left = None;
            }
        }
        away
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_is_away_from_when_it_stops_leading_until_it_leads_again() {
        let log = r#"{"time":"2026-12-02T01:29:54.413Z","level":"INFO","msg":"new leader","leader":"workflow-controller-0"}
{"time":"2026-12-02T01:30:19.432Z","level":"INFO","msg":"stopped leading","id":"workflow-controller-0"}
restart-always: 2026-12-02T01:30:19.500Z workflow-controller exited with status 0; starting it again in 1s
time=2026-12-02T01:30:20.600Z level=INFO msg="index config" indexWorkflowSemaphoreKeys=true
restart-always: 2026-12-02T01:30:21.000Z workflow-controller exited with status 1; starting it again in 1s
{"time":"2026-12-02T01:30:39.530Z","level":"INFO","msg":"new leader","leader":"workflow-controller-0"}
{"time":"2026-12-02T01:31:00.000Z","level":"INFO","msg":"Processing workflow"}
restart-always: 2026-12-02T01:32:00.000Z workflow-controller exited with status 2; starting it again in 1s
{"time":"2026-12-02T01:32:01.500Z","level":"INFO","msg":"new leader","leader":"workflow-controller-0"}
"#;
        let at = |time: &str| time.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        assert_eq!(
            ControllerAway::read(log, "soak/stagectl-reconcile"),
            ControllerAway {
                exits: 3,
                windows: vec![
                    (
                        at("2026-12-02T01:30:19.432Z"),
                        at("2026-12-02T01:30:39.530Z")
                    ),
                    (
                        at("2026-12-02T01:32:00.000Z"),
                        at("2026-12-02T01:32:01.500Z")
                    ),
                ],
                scheduled: vec![],
            }
        );
    }

    /// Argo v3.7's controller names the CronWorkflow in its message, and logs its level in
    /// lower case.
    #[test]
    fn the_v3_7_controller_puts_the_cronworkflow_on_its_schedule_in_its_own_words() {
        let log = r#"{"level":"info","msg":"stopped leading","id":"workflow-controller-0","time":"2026-12-07T20:00:00.000Z"}
{"leader":"workflow-controller-0","level":"info","msg":"new leader","time":"2026-12-07T20:00:10.000Z"}
{"cronWorkflow":"soak/stagectl-reconcile","level":"info","msg":"CronWorkflow soak/stagectl-reconcile added","time":"2026-12-07T20:00:11.010Z"}
{"cronWorkflow":"other/stagectl-reconcile","level":"info","msg":"CronWorkflow other/stagectl-reconcile added","time":"2026-12-07T20:00:11.020Z"}
"#;
        let at = |time: &str| time.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        let away = ControllerAway::read(log, "soak/stagectl-reconcile");
        assert_eq!(away.scheduled, [at("2026-12-07T20:00:11.010Z")]);
        assert_eq!(
            away.windows,
            [(
                at("2026-12-07T20:00:00.000Z"),
                at("2026-12-07T20:00:10.000Z")
            )]
        );
    }

    /// As the twelfth full soak's controller logged it: it led again at 13:04:58, but put the
    /// CronWorkflow on its schedule only at 13:05:41, so the run due at 13:05 never came.
    #[test]
    fn a_controller_window_lasts_until_the_controller_has_the_cronworkflow_on_its_schedule_again() {
        let log = r#"{"time":"2026-12-02T13:04:04.573Z","level":"INFO","msg":"CronWorkflow added","cronWorkflow":"soak/stagectl-reconcile","component":"cron"}
{"time":"2026-12-02T13:04:44.179Z","level":"INFO","msg":"stopped leading","id":"workflow-controller-0"}
restart-always: 2026-12-02T13:04:44.224Z workflow-controller exited with status 0; starting it again in 1s
{"time":"2026-12-02T13:04:58.018Z","level":"INFO","msg":"new leader","leader":"workflow-controller-0"}
{"time":"2026-12-02T13:05:40.682Z","level":"INFO","msg":"new leader","leader":"workflow-controller-0"}
{"time":"2026-12-02T13:05:41.210Z","level":"INFO","msg":"CronWorkflow added","component":"cron","cronWorkflow":"soak/stagectl-reconcile"}
{"time":"2026-12-02T13:05:41.300Z","level":"INFO","msg":"CronWorkflow added","component":"cron","cronWorkflow":"other/stagectl-reconcile"}
{"time":"2026-12-02T13:06:00.065Z","level":"INFO","msg":"CronWorkflow added","cronWorkflow":"soak/stagectl-reconcile","component":"cron"}
"#;
        let at = |time: &str| time.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        let away = ControllerAway::read(log, "soak/stagectl-reconcile");
        assert_eq!(
            away.scheduled,
            [
                at("2026-12-02T13:04:04.573Z"),
                at("2026-12-02T13:05:41.210Z"),
                at("2026-12-02T13:06:00.065Z")
            ]
        );
        let window = |process: &str, from: &str, to: &str| Downtime {
            process: process.into(),
            from: at(from),
            to: at(to),
        };
        let mut windows = vec![
            // Away on its own, as read from the log.
            window(
                "workflow-controller",
                "2026-12-02T13:04:44.179Z",
                "2026-12-02T13:04:58.018Z",
            ),
            // Killed, and up again (its metrics served) 2 s later; the log ends before it put
            // the CronWorkflow on its schedule again: left as it was.
            window(
                "workflow-controller",
                "2026-12-02T13:06:10.000Z",
                "2026-12-02T13:06:12.000Z",
            ),
            window(
                "apiserver",
                "2026-12-02T13:04:50.000Z",
                "2026-12-02T13:04:55.000Z",
            ),
        ];
        away.last_until_scheduled(&mut windows);
        let ends: Vec<Millis> = windows.iter().map(|w| w.to).collect();
        assert_eq!(
            ends,
            [
                at("2026-12-02T13:05:41.210Z"),
                at("2026-12-02T13:06:12.000Z"),
                at("2026-12-02T13:04:55.000Z")
            ]
        );
    }
}
