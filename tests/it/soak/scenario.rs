//! What a soak run does, drawn from its seed alone: the plays, what each agent does and when its
//! webhook comes, and the faults, when and for how long. The same seed and sizes give the same
//! scenario, so a failing run is replayed from the seed it printed.

use std::time::Duration;

/// SplitMix64: small, and its sequence for a seed never changes with a dependency's version.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One of `choices`, each as likely as its weight.
    pub fn weighted<T: Copy>(&mut self, choices: &[(u64, T)]) -> T {
        let total: u64 = choices.iter().map(|(weight, _)| weight).sum();
        let mut pick = self.next_u64() % total;
        for (weight, choice) in choices {
            if pick < *weight {
                return *choice;
            }
            pick -= weight;
        }
        unreachable!("pick < total")
    }

    pub fn millis_within(&mut self, span: Duration) -> Duration {
        Duration::from_millis(self.between(0, span.as_millis().max(1) as u64 - 1))
    }
}

/// How big a run is.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub plays: usize,
    /// Plays are submitted and faults injected over this long.
    pub duration: Duration,
    /// Faults per minute, on average.
    pub faults_per_minute: f64,
}

/// When a webhook comes, relative to the play's wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// Delivered and handled while the agent's step runs, before the play waits.
    Early,
    /// Delivered once the play waits.
    OnTime,
    /// Delivered this many seconds after the play waits.
    Late(u64),
    /// Never delivered: GitHub's delivery failed. Only reconcile can release the wait.
    Dropped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentPlan {
    pub timing: Timing,
    /// How many times the webhook is sent; the repeats `gap` seconds apart.
    pub deliveries: u32,
    /// Repeats are new webhooks (new delivery ids) rather than GitHub's redeliveries.
    pub new_ids: bool,
    pub gap: u64,
    /// The agent fails with this exit code after its work.
    pub exit: i32,
    /// Tess or CI only: her review requests changes, or the check suite fails, in passes 1 to
    /// this, which sends the play back; after, she approves, or it passes (0: at once). At the
    /// pipeline's limit the play fails at that wait.
    pub send_back: u32,
}

impl AgentPlan {
    /// The agent image's command line (tests/e2e/agents/agent), with the GitHub stand-in.
    pub fn command(&self, role: &str, github: &str) -> String {
        let (event, delay) = match self.timing {
            Timing::Early => ("early", 0),
            Timing::OnTime => ("on-time", 0),
            Timing::Late(seconds) => ("late", seconds),
            Timing::Dropped => ("dropped", 0),
        };
        let loops = match self.send_back {
            0 => String::new(),
            passes => format!(" --send-back {passes}"),
        };
        format!(
            r#"{role} --task "$TASK_ID" --repository "$REPOSITORY" --event {event} --delay {delay} --deliveries {} --redeliver {} --gap {} --exit {}{loops} --github {github}"#,
            self.deliveries,
            if self.new_ids { "new" } else { "same" },
            self.gap,
            self.exit
        )
    }
}

/// The pipeline a soak's plays run: the shipped play, or the gated example
/// (examples/pipelines/gated), whose CI and merge events come from `ci` in Rex's step and
/// `merge` in Tess's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoakPipeline {
    Play,
    Gated,
}

impl SoakPipeline {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "play" => Some(Self::Play),
            "gated" => Some(Self::Gated),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Play => "play",
            Self::Gated => "gated",
        }
    }

    /// Its manifests: what a namespace of its plays installs.
    pub fn dir(self) -> &'static str {
        match self {
            Self::Play => "workflow-templates",
            Self::Gated => "examples/pipelines/gated",
        }
    }

    pub fn template(self) -> &'static str {
        match self {
            Self::Play => "play",
            Self::Gated => "play-gated",
        }
    }

    /// How many passes a play may make, as its definition says (its pipeline.yaml).
    pub fn passes(self) -> u32 {
        3
    }

    /// The roles whose event at their wait may send the play back, by index: Tess's change
    /// request at the approval wait, and in the gated pipeline CI failing at its gate.
    pub fn senders(self) -> &'static [usize] {
        match self {
            Self::Play => &[2],
            Self::Gated => &[1, 3],
        }
    }

    /// The waiting stages in order, the wait node of each, and the GitHub change each awaits.
    pub fn waits(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            Self::Play => &[
                ("waiting-pr-created", "wait-pr-created", "pr-opened"),
                ("waiting-ready-for-qa", "wait-ready-for-qa", "ready-for-qa"),
                ("waiting-pr-approved", "wait-pr-approved", "approved"),
            ],
            Self::Gated => &[
                ("waiting-pr-created", "wait-pr-created", "pr-opened"),
                ("waiting-ci", "wait-ci", "checks-passed"),
                ("waiting-ready-for-qa", "wait-ready-for-qa", "ready-for-qa"),
                ("waiting-pr-approved", "wait-pr-approved", "approved"),
                ("waiting-merged", "wait-merged", "merged"),
            ],
        }
    }

    /// Who causes each wait's event, in the order of the waits (tests/e2e/agents).
    pub fn roles(self) -> &'static [&'static str] {
        match self {
            Self::Play => &["rex", "cleo", "tess"],
            Self::Gated => &["rex", "ci", "cleo", "tess", "merge"],
        }
    }

    /// The play's three agent steps, each the roles (by index) its command line runs: CI runs
    /// after Rex's push, the merge after Tess's approval.
    fn steps(self) -> [&'static [usize]; 3] {
        match self {
            Self::Play => [&[0], &[1], &[2]],
            Self::Gated => [&[0, 1], &[2], &[3, 4]],
        }
    }

    /// The roles that may be drawn to fail: those a step begins with, so that the play fails
    /// before the wait of that role's event, and no role after it in its step runs.
    fn failable(self) -> &'static [usize] {
        match self {
            Self::Play => &[0, 1, 2],
            Self::Gated => &[0, 2, 3],
        }
    }

    /// Its Sensors, as tests/events/start names their pods.
    pub fn sensors(self) -> &'static [&'static str] {
        match self {
            Self::Play => &[
                "sensor-play-pr-created",
                "sensor-play-ready-for-qa",
                "sensor-play-pr-approved",
                "sensor-play-pr-approved-sent-back",
            ],
            Self::Gated => &[
                "sensor-gated-pr-created",
                "sensor-gated-ci",
                "sensor-gated-ci-sent-back",
                "sensor-gated-ready-for-qa",
                "sensor-gated-pr-approved",
                "sensor-gated-pr-approved-sent-back",
                "sensor-gated-merged",
            ],
        }
    }
}

#[derive(Clone, Debug)]
pub struct PlayPlan {
    pub task: String,
    pub repository: String,
    pub pipeline: SoakPipeline,
    /// One per role of the pipeline, in the order of the waits.
    pub agents: Vec<AgentPlan>,
    /// When it is submitted, from the start of the run.
    pub submit_at: Duration,
}

impl PlayPlan {
    /// The GitHub change that releases (or decides) the wait of role `index` in `pass`: in a
    /// later pass Rex pushes to the pull request he opened; the role drawn to send the play
    /// back requests changes, or fails CI, in its passes, and approves, or passes, after.
    pub fn change_in_pass(&self, index: usize, pass: u32) -> &'static str {
        let sends_back = self
            .sender()
            .is_some_and(|(sender, passes)| sender == index && pass <= passes);
        match (self.waits()[index].2, pass) {
            ("pr-opened", 2..) => "pushed",
            ("approved", _) if sends_back => "changes-requested",
            ("checks-passed", _) if sends_back => "checks-failed",
            (kind, _) => kind,
        }
    }

    /// The role drawn to send the play back, by index, and in how many passes.
    pub fn sender(&self) -> Option<(usize, u32)> {
        self.agents
            .iter()
            .position(|agent| agent.send_back > 0)
            .map(|index| (index, self.agents[index].send_back))
    }

    /// The agent that fails, if one does: the play ends `failed` there.
    pub fn failing_agent(&self) -> Option<usize> {
        self.agents.iter().position(|agent| agent.exit != 0)
    }

    /// How many passes the play is sent back in.
    pub fn send_backs(&self) -> u32 {
        self.sender().map_or(0, |(_, passes)| passes)
    }

    /// How many passes the play makes: one more than it is sent back, up to the limit.
    pub fn passes(&self) -> u32 {
        (self.send_backs() + 1).min(self.pipeline.passes())
    }

    /// Whether the play is sent back in its last pass allowed, and so fails at the limit.
    pub fn fails_at_limit(&self) -> bool {
        self.send_backs() >= self.pipeline.passes()
    }

    pub fn waits(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        self.pipeline.waits()
    }

    /// The command lines of Rex's, Cleo's and Tess's steps, with the GitHub stand-in. A role
    /// after the sender in its step (the merge after Tess's review) acts only in the passes
    /// she did not send back.
    pub fn commands(&self, github: &str) -> [String; 3] {
        self.pipeline.steps().map(|roles| {
            let lines: Vec<String> = roles
                .iter()
                .map(|&i| {
                    let line = self.agents[i].command(self.pipeline.roles()[i], github);
                    match self.sender() {
                        Some((sender, passes)) if sender < i && roles.contains(&sender) => {
                            format!("{line} --from-pass {}", passes + 1)
                        }
                        _ => line,
                    }
                })
                .collect();
            lines.join(" && ")
        })
    }
}

/// A process of the system, as a fault names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Process {
    ApiServer,
    Controller,
    EventSource,
    Nats,
    /// A Sensor, by its pod's name ([`SoakPipeline::sensors`]).
    Sensor(&'static str),
}

impl Process {
    pub fn name(self) -> &'static str {
        match self {
            Process::ApiServer => "apiserver",
            Process::Controller => "workflow-controller",
            Process::EventSource => "eventsource",
            Process::Nats => "nats",
            Process::Sensor(name) => name,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// kill -9, and started again after the downtime.
    Kill(Process),
    /// GitHub's REST API answers these to the next requests (see tests/github/standin.mjs).
    GitHub5xx(u32),
    GitHubReset(u32),
    GitHubStall,
    /// A secondary rate limit with Retry-After: this many seconds.
    GitHubSecondaryLimit(u64),
    /// The primary rate limit used up for the downtime.
    GitHubRateLimit,
    /// Every request to the API server held this many milliseconds by the control plane's
    /// latency proxy, for the downtime: a loaded or distant server, for every client at once.
    SlowApiServer(u64),
}

impl FaultKind {
    /// The kind's name in the report, without its parameters.
    pub fn label(self) -> String {
        match self {
            FaultKind::Kill(process) => format!("kill -9 {}", process.name()),
            FaultKind::GitHub5xx(_) => "github 502".into(),
            FaultKind::GitHubReset(_) => "github connection reset".into(),
            FaultKind::GitHubStall => "github no answer".into(),
            FaultKind::GitHubSecondaryLimit(_) => "github secondary rate limit".into(),
            FaultKind::GitHubRateLimit => "github rate limit used up".into(),
            FaultKind::SlowApiServer(_) => "slow apiserver".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub at: Duration,
    pub kind: FaultKind,
    /// How long the process stays down, or the limit lasts.
    pub downtime: Duration,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    /// One run may draw from several seeds at once (the short soak: a fixed one and a random
    /// one), each as many plays and faults as `size` says.
    pub seeds: Vec<u64>,
    pub pipeline: SoakPipeline,
    pub size: Size,
    pub plays: Vec<PlayPlan>,
    pub faults: Vec<Fault>,
}

/// Repositories the plays are spread over; plays next to each other share a task id in two of
/// them, so that an event routed by task id alone would reach the wrong play.
pub const REPOSITORIES: [&str; 3] = ["acme/widgets", "acme/gadgets", "Acme/Soak"];

impl Scenario {
    /// Each seed draws its plays and faults as it would alone, in one run on one installation:
    /// its faults meet every seed's plays. The plays are numbered on from the previous seed's,
    /// so that no two seeds' plays share a task in a repository; a single seed's scenario is
    /// the same as ever, and its printed seed replays it.
    pub fn generate(seeds: &[u64], size: Size, pipeline: SoakPipeline) -> Self {
        let minutes = size.duration.as_secs_f64() / 60.0;
        let faults_per_seed = (minutes * size.faults_per_minute).round() as usize;
        let mut plays = Vec::new();
        let mut faults = Vec::new();
        for &seed in seeds {
            let mut rng = Rng::new(seed);
            let first = plays.len();
            plays.extend((first..first + size.plays).map(|i| {
                let mut agents: Vec<AgentPlan> =
                    pipeline.roles().iter().map(|_| agent(&mut rng)).collect();
                // A few plays fail where an agent is told to; the rest must complete.
                if rng.chance(4) {
                    let failable = pipeline.failable();
                    let which = failable[rng.between(0, failable.len() as u64 - 1) as usize];
                    agents[which].exit = 3;
                }
                // Tess asks for changes (or CI fails) in some plays, from a stream of its own
                // so that the rest of a seed's scenario is what it was before plays looped.
                let senders = pipeline.senders();
                if agents.iter().all(|agent| agent.exit == 0) {
                    let mut loops =
                        Rng::new(seed ^ 0x1005_u64.rotate_left(40) ^ (i - first) as u64);
                    let passes =
                        loops.weighted(&[(62, 0), (25, 1), (8, 2), (5, pipeline.passes())]);
                    let sender = match senders {
                        [one] => *one,
                        many => many[loops.between(0, many.len() as u64 - 1) as usize],
                    };
                    agents[sender].send_back = passes;
                }
                PlayPlan {
                    task: (100 + i / 2).to_string(),
                    repository: REPOSITORIES[i % REPOSITORIES.len()].to_string(),
                    pipeline,
                    agents,
                    submit_at: rng.millis_within(size.duration),
                }
            }));
            faults.extend(
                (0..faults_per_seed).map(|_| fault(&mut rng, size.duration, pipeline.sensors())),
            );
        }
        faults.sort_by_key(|fault| fault.at);
        plays.sort_by_key(|play| play.submit_at);
        Self {
            seeds: seeds.to_vec(),
            pipeline,
            size,
            plays,
            faults,
        }
    }
}

fn agent(rng: &mut Rng) -> AgentPlan {
    let timing = rng.weighted(&[
        (40, Timing::Early),
        (30, Timing::OnTime),
        (18, Timing::Late(0)),
        (12, Timing::Dropped),
    ]);
    let timing = match timing {
        Timing::Late(_) => Timing::Late(rng.between(3, 40)),
        other => other,
    };
    let repeated = timing != Timing::Dropped && rng.chance(25);
    AgentPlan {
        timing,
        deliveries: if repeated { 2 } else { 1 },
        new_ids: repeated && rng.chance(40),
        gap: if repeated { rng.between(0, 45) } else { 0 },
        exit: 0,
        send_back: 0,
    }
}

fn fault(rng: &mut Rng, span: Duration, sensors: &[&'static str]) -> Fault {
    let at = rng.millis_within(span);
    let kind = rng.weighted(&[
        (10, FaultKind::Kill(Process::ApiServer)),
        (10, FaultKind::Kill(Process::Controller)),
        (12, FaultKind::Kill(Process::EventSource)),
        (12, FaultKind::Kill(Process::Nats)),
        (12, FaultKind::Kill(Process::Sensor(sensors[0]))),
        (10, FaultKind::GitHub5xx(0)),
        (8, FaultKind::GitHubReset(0)),
        (4, FaultKind::GitHubStall),
        (8, FaultKind::GitHubSecondaryLimit(0)),
        (4, FaultKind::GitHubRateLimit),
        (8, FaultKind::SlowApiServer(0)),
    ]);
    let kind = match kind {
        FaultKind::Kill(Process::Sensor(_)) => {
            let which = rng.between(0, sensors.len() as u64 - 1) as usize;
            FaultKind::Kill(Process::Sensor(sensors[which]))
        }
        FaultKind::GitHub5xx(_) => FaultKind::GitHub5xx(rng.between(1, 6) as u32),
        FaultKind::GitHubReset(_) => FaultKind::GitHubReset(rng.between(1, 4) as u32),
        FaultKind::GitHubSecondaryLimit(_) => FaultKind::GitHubSecondaryLimit(rng.between(1, 5)),
        FaultKind::SlowApiServer(_) => FaultKind::SlowApiServer(rng.between(200, 3000)),
        other => other,
    };
    let downtime = match kind {
        FaultKind::Kill(Process::ApiServer) => Duration::from_secs(rng.between(0, 8)),
        FaultKind::Kill(_) => Duration::from_secs(rng.between(1, 20)),
        FaultKind::GitHubRateLimit => Duration::from_secs(rng.between(20, 90)),
        FaultKind::SlowApiServer(_) => Duration::from_secs(rng.between(10, 60)),
        _ => Duration::ZERO,
    };
    Fault { at, kind, downtime }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size() -> Size {
        Size {
            plays: 40,
            duration: Duration::from_secs(600),
            faults_per_minute: 4.0,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_scenario_and_another_seed_another() {
        let a = Scenario::generate(&[7], size(), SoakPipeline::Play);
        let b = Scenario::generate(&[7], size(), SoakPipeline::Play);
        let c = Scenario::generate(&[8], size(), SoakPipeline::Play);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_ne!(format!("{a:?}"), format!("{c:?}"));
        assert_eq!(a.plays.len(), 40);
        assert_eq!(a.faults.len(), 40);
    }

    #[test]
    fn seeds_drawn_together_are_each_what_it_is_alone_on_plays_of_their_own() {
        let alone = |seed| Scenario::generate(&[seed], size(), SoakPipeline::Play);
        let together = Scenario::generate(&[7, 8], size(), SoakPipeline::Play);
        assert_eq!(together.plays.len(), 80);
        assert_eq!(together.faults.len(), 80);
        let mut faults = [alone(7).faults, alone(8).faults].concat();
        faults.sort_by_key(|fault| fault.at);
        assert_eq!(together.faults, faults);
        // The second seed's plays are its own, under tasks the first seed's do not use.
        let drawn = |scenario: &Scenario| -> Vec<String> {
            let mut plays: Vec<String> = scenario
                .plays
                .iter()
                .map(|p| format!("{:?} {:?}", p.agents, p.submit_at))
                .collect();
            plays.sort();
            plays
        };
        let mut both = [drawn(&alone(7)), drawn(&alone(8))].concat();
        both.sort();
        assert_eq!(drawn(&together), both);
        let keys: std::collections::BTreeSet<(&str, &str)> = together
            .plays
            .iter()
            .map(|p| (p.task.as_str(), p.repository.as_str()))
            .collect();
        assert_eq!(keys.len(), 80);
        // The first seed's plays are exactly as it draws them alone: its replays hold.
        let first: Vec<String> = alone(7).plays.iter().map(|p| format!("{p:?}")).collect();
        let kept = together
            .plays
            .iter()
            .map(|p| format!("{p:?}"))
            .filter(|p| first.contains(p))
            .count();
        assert_eq!(kept, 40);
    }

    /// The gated pipeline's plays: an agent per role (CI and the merge too), drawn to fail only
    /// at a step's first role, each step's command line running its roles in order; its
    /// Sensors among the faults.
    /// The Sensors a fault may kill are those the pipeline's directory installs, each by the
    /// name tests/events/start gives its process.
    #[test]
    fn the_sensors_a_fault_may_kill_are_every_sensor_of_the_pipeline() {
        for pipeline in [SoakPipeline::Play, SoakPipeline::Gated] {
            let dir = crate::harness::repo_path(pipeline.dir());
            let mut installed: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .filter(|path| {
                    path.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| name.starts_with("sensor-"))
                })
                .map(|path| {
                    let text = std::fs::read_to_string(&path).unwrap();
                    let name = text
                        .lines()
                        .find_map(|line| line.strip_prefix("  name: "))
                        .unwrap_or_else(|| panic!("{}: no metadata.name", path.display()));
                    format!("sensor-{name}")
                })
                .collect();
            installed.sort();
            let mut listed: Vec<String> =
                pipeline.sensors().iter().map(|s| s.to_string()).collect();
            listed.sort();
            assert_eq!(listed, installed, "{}", pipeline.name());
        }
    }

    #[test]
    fn a_gated_scenario_draws_every_role_and_fails_only_where_a_step_begins() {
        let scenario = Scenario::generate(
            &[3],
            Size {
                plays: 200,
                duration: Duration::from_secs(1200),
                faults_per_minute: 6.0,
            },
            SoakPipeline::Gated,
        );
        assert!(scenario.plays.iter().all(|play| play.agents.len() == 5));
        let failing: std::collections::BTreeSet<usize> = scenario
            .plays
            .iter()
            .filter_map(PlayPlan::failing_agent)
            .collect();
        assert!(
            !failing.is_empty() && failing.is_subset(&[0, 2, 3].into()),
            "{failing:?}"
        );
        // Both CI and Tess send plays back; a merge follows only an approval.
        let senders: std::collections::BTreeSet<usize> = scenario
            .plays
            .iter()
            .filter_map(|play| play.sender().map(|(index, _)| index))
            .collect();
        assert_eq!(senders, [1, 3].into());
        let sent_back_by_tess = scenario
            .plays
            .iter()
            .find(|play| play.sender().is_some_and(|(index, _)| index == 3))
            .unwrap();
        let [_, _, review] = sent_back_by_tess.commands("http://github");
        let passes = sent_back_by_tess.send_backs();
        assert!(
            review.contains(&format!("--send-back {passes}"))
                && review.ends_with(&format!(" --from-pass {}", passes + 1)),
            "{review}"
        );
        let commands = scenario.plays[0].commands("http://github");
        assert!(
            commands[0].starts_with("rex ") && commands[0].contains(" && ci "),
            "{commands:?}"
        );
        assert!(commands[1].starts_with("cleo ") && !commands[1].contains("&&"));
        assert!(commands[2].starts_with("tess ") && commands[2].contains(" && merge "));
        let sensors: std::collections::BTreeSet<&str> = scenario
            .faults
            .iter()
            .filter_map(|fault| match fault.kind {
                FaultKind::Kill(Process::Sensor(name)) => Some(name),
                _ => None,
            })
            .collect();
        assert!(sensors.iter().all(|name| name.starts_with("sensor-gated-")));
        assert!(sensors.len() > 3, "{sensors:?}");
    }

    #[test]
    fn a_scenario_has_every_timing_and_fault_kind_and_plays_sharing_a_task_across_repositories() {
        let scenario = Scenario::generate(
            &[1],
            Size {
                plays: 150,
                duration: Duration::from_secs(1200),
                faults_per_minute: 6.0,
            },
            SoakPipeline::Play,
        );
        let timings: Vec<Timing> = scenario
            .plays
            .iter()
            .flat_map(|play| play.agents.iter().map(|agent| agent.timing))
            .collect();
        for wanted in [Timing::Early, Timing::OnTime, Timing::Dropped] {
            assert!(timings.contains(&wanted), "{wanted:?}");
        }
        assert!(timings.iter().any(|t| matches!(t, Timing::Late(_))));
        let labels: std::collections::BTreeSet<String> =
            scenario.faults.iter().map(|f| f.kind.label()).collect();
        // Ten kinds of fault, and a kill of each Sensor.
        assert_eq!(
            labels.len(),
            10 + SoakPipeline::Play.sensors().len(),
            "{labels:?}"
        );
        let shared = scenario.plays.iter().any(|a| {
            scenario
                .plays
                .iter()
                .any(|b| a.task == b.task && a.repository != b.repository)
        });
        assert!(shared);
        assert!(scenario.plays.iter().any(|p| p.failing_agent().is_some()));
        assert!(scenario.faults.windows(2).all(|w| w[0].at <= w[1].at));
    }
}
