//! What `reconcile` decides for each play that waits, as data: the plays' stage records and
//! what GitHub says in, one decision per play out. The command reads both, asks here, delivers
//! through resume's path, and renders.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::error::{Error, Kind};
use crate::event::{Awaited, Verdict};
use crate::github::{self, Commit, Completed, Labelled, PullFacts, PullRequest, Reads, Review};
use crate::labels::{Repository, TaskId};
use crate::latch::Delivery;
use crate::pass::Pass;
use crate::record::StageRecord;
use crate::resume::EventRequest;
use crate::stage::Stage;

/// A play at a waiting stage that has not ended.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingPlay {
    pub workflow: String,
    pub stage: Stage,
    /// The event that releases its wait, as the pipeline defines it.
    pub awaited: Option<Awaited>,
    /// The event that fails the play there, where the pipeline names one.
    pub failing: Option<Awaited>,
    /// The event that sends the play back from there, where the pipeline names one.
    pub sending_back: Option<Awaited>,
    /// None when its label holds no task id (none, or not a valid one).
    pub task_id: Option<TaskId>,
    /// As the play's label or annotation names it, parsed when it parses.
    pub repository_name: String,
    pub repository: Option<Repository>,
    /// Since when it waits: the change that entered the stage.
    pub since: Option<Timestamp>,
    /// When the play was created: nothing GitHub changed before is its task's doing.
    pub created: Option<Timestamp>,
    /// The pass it is in: only what happened on GitHub since it began counts.
    pub pass: Pass,
}

/// The plays among `records` that wait, in name order, each at a wait of its own pipeline.
pub fn waiting_plays(records: impl IntoIterator<Item = StageRecord>) -> Vec<WaitingPlay> {
    let mut waiting: Vec<WaitingPlay> = records
        .into_iter()
        .filter_map(|record| {
            let stage = record.stage.clone()?;
            let pipeline = record.pipeline.clone();
            if record.ended || !pipeline.is_waiting(&stage) {
                return None;
            }
            let repository_name = record.repository.clone().unwrap_or_default();
            Some(WaitingPlay {
                pass: Pass {
                    number: record.pass,
                    began: record.pass_began,
                    annotated: true,
                },
                sending_back: pipeline.sending_back(&stage).map(|back| back.event.clone()),
                since: record.waiting_since(),
                created: record.created_at,
                workflow: record.name,
                awaited: pipeline.awaited(&stage).cloned(),
                failing: pipeline.failing(&stage).cloned(),
                stage,
                task_id: record
                    .task_id
                    .as_deref()
                    .and_then(|id| TaskId::parse(id).ok()),
                repository: Repository::parse(&repository_name).ok(),
                repository_name,
            })
        })
        .collect();
    waiting.sort_by(|a, b| a.workflow.cmp(&b.workflow));
    waiting
}

impl WaitingPlay {
    /// What the play awaits on GitHub and where, when reconcile can know it.
    pub fn awaits(&self) -> Result<(&Awaited, Reads, &Repository, &TaskId), CannotTell> {
        let awaited = self.awaited.as_ref().ok_or(CannotTell::StageWithoutEvent)?;
        let reads = Reads::in_pass(awaited, &self.pass);
        match (&self.repository, &self.task_id) {
            (Some(repository), Some(task)) => Ok((awaited, reads, repository, task)),
            _ => Err(CannotTell::Unlabelled),
        }
    }

    /// The event to deliver for a `Deliver` decision, as `stagectl resume` would take it. The
    /// decision is for the pass the play was in when the plays were listed, and the event says
    /// so: a play sent back meanwhile takes nothing of it (a later run reads the new pass).
    pub fn event(
        &self,
        namespace: &str,
        deliver: &Deliver,
        by: &str,
        at: Timestamp,
    ) -> EventRequest {
        EventRequest {
            namespace: namespace.to_string(),
            stage: self.stage.clone(),
            task_id: deliver.task.clone(),
            repository: self.repository.clone(),
            delivery: Delivery {
                delivery_id: Some(deliver.delivery_id.clone()),
                event: Some(deliver.awaited.github_event().to_string()),
                at,
                by: by.to_string(),
                verdict: deliver.verdict,
            },
            // The event's own facts: resume decides what it does by the rule a webhook's meet.
            facts: Some(deliver.awaited.facts()),
            pass: Some(self.pass.number),
        }
    }
}

/// What GitHub said, read before anything is written: the open pull requests of each
/// repository, and for the plays whose waits need them the reviews, the merged pull requests,
/// and the check suites and workflow runs on a head.
#[derive(Debug, Default)]
pub struct GitHubFacts {
    pulls: BTreeMap<String, Vec<PullRequest>>,
    /// Merged pull requests, with the time they were read back to.
    merged: BTreeMap<String, (Option<Timestamp>, Vec<PullRequest>)>,
    reviews: BTreeMap<(String, u64), Vec<Review>>,
    check_suites: BTreeMap<(String, String), Vec<Completed>>,
    workflow_runs: BTreeMap<(String, String), Vec<Completed>>,
    labelled: BTreeMap<(String, u64), Vec<Labelled>>,
    commits: BTreeMap<(String, u64), Vec<Commit>>,
}

/// One request of GitHub that a play's decision needs, as data: the command makes it and
/// hands the answer back (the `add_*` of its kind), then asks for the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    OpenPulls(Repository),
    Reviews(Repository, u64),
    /// Closed pull requests, newest first, back to `since` (all when unknown).
    MergedPulls {
        repository: Repository,
        since: Option<Timestamp>,
    },
    CheckSuites(Repository, String),
    WorkflowRuns(Repository, String),
    /// The labels added to a pull request (its issue's events), for a play in a later pass.
    LabelEvents(Repository, u64),
    /// A pull request's commits, for a play in a later pass.
    Commits(Repository, u64),
}

/// GitHub's names are case-insensitive: one key per repository however a play spells it.
fn key(repository: &Repository) -> String {
    repository.full_name().to_ascii_lowercase()
}

impl GitHubFacts {
    /// What is still to be read to decide for `play`; None once it can be decided (or never
    /// can). Each answer added makes the next question a different one.
    pub fn next_read(&self, play: &WaitingPlay) -> Option<Read> {
        let (_, reads, repository, task) = play.awaits().ok()?;
        let repo = key(repository);
        if !self.pulls.contains_key(&repo) {
            return Some(Read::OpenPulls(repository.clone()));
        }
        // No open pull request of the task: the one merged since the play began is its own
        // (an approval whose webhook was lost, and then an auto-merge), whatever the wait.
        let open = self.pulls.get(&repo).map_or(&[][..], Vec::as_slice);
        if github::pull_of_task(open, task.as_str()).ok()?.is_none()
            && !self.merged_read_back_to(&repo, play.created)
        {
            return Some(Read::MergedPulls {
                repository: repository.clone(),
                since: play.created,
            });
        }
        let pull = self.pull_of(repository, task, play.created).ok()??;
        let at_head = (repo.clone(), pull.head_sha.clone());
        let of_pull = (repo, pull.number);
        let missing = match reads {
            Reads::Nothing | Reads::MergedPulls => false,
            Reads::Reviews => !self.reviews.contains_key(&of_pull),
            Reads::CheckSuites => !self.check_suites.contains_key(&at_head),
            Reads::WorkflowRuns => !self.workflow_runs.contains_key(&at_head),
            Reads::LabelEvents => !self.labelled.contains_key(&of_pull),
            Reads::Commits => !self.commits.contains_key(&of_pull),
        };
        let repository = repository.clone();
        missing.then(|| match reads {
            Reads::Reviews => Read::Reviews(repository, pull.number),
            Reads::CheckSuites => Read::CheckSuites(repository, pull.head_sha.clone()),
            Reads::LabelEvents => Read::LabelEvents(repository, pull.number),
            Reads::Commits => Read::Commits(repository, pull.number),
            _ => Read::WorkflowRuns(repository, pull.head_sha.clone()),
        })
    }

    pub fn add_pulls(&mut self, repository: &Repository, pulls: Vec<PullRequest>) {
        self.pulls.insert(key(repository), pulls);
    }

    /// The closed pull requests read back to `since`: the merged ones updated since are kept.
    pub fn add_merged(
        &mut self,
        repository: &Repository,
        since: Option<Timestamp>,
        closed: Vec<PullRequest>,
    ) {
        let merged = closed
            .into_iter()
            .filter(|pull| pull.merged)
            .filter(|pull| since.is_none_or(|since| pull.updated_at.is_none_or(|at| at >= since)))
            .collect();
        self.merged.insert(key(repository), (since, merged));
    }

    pub fn add_reviews(&mut self, repository: &Repository, pull: u64, reviews: Vec<Review>) {
        self.reviews.insert((key(repository), pull), reviews);
    }

    pub fn add_check_suites(&mut self, repository: &Repository, sha: &str, suites: Vec<Completed>) {
        self.check_suites
            .insert((key(repository), sha.to_string()), suites);
    }

    pub fn add_workflow_runs(&mut self, repository: &Repository, sha: &str, runs: Vec<Completed>) {
        self.workflow_runs
            .insert((key(repository), sha.to_string()), runs);
    }

    pub fn add_label_events(&mut self, repository: &Repository, pull: u64, added: Vec<Labelled>) {
        self.labelled.insert((key(repository), pull), added);
    }

    pub fn add_commits(&mut self, repository: &Repository, pull: u64, commits: Vec<Commit>) {
        self.commits.insert((key(repository), pull), commits);
    }

    /// Whether the merged pull requests are read back to the play's creation.
    fn merged_read_back_to(&self, repo: &str, created: Option<Timestamp>) -> bool {
        let read_back_to = self.merged.get(repo).map(|(since, _)| *since);
        read_back_to.is_some_and(|since| match (since, created) {
            (None, _) => true,
            (Some(since), Some(created)) => since <= created,
            (Some(_), None) => false,
        })
    }

    /// The task's pull request: its open one, else the one merged since the play began.
    fn pull_of(
        &self,
        repository: &Repository,
        task: &TaskId,
        created: Option<Timestamp>,
    ) -> Result<Option<&PullRequest>, Vec<u64>> {
        let repo = key(repository);
        let open = self.pulls.get(&repo).map_or(&[][..], Vec::as_slice);
        match github::pull_of_task(open, task.as_str())? {
            Some(pull) => Ok(Some(pull)),
            None if self.merged_read_back_to(&repo, created) => {
                let merged = self.merged.get(&repo).map_or(&[][..], |(_, pulls)| pulls);
                github::pull_of_task(merged, task.as_str())
            }
            None => Ok(None),
        }
    }

    fn facts_of<'a>(
        &'a self,
        repository: &Repository,
        pull: &'a PullRequest,
        pass: Pass,
    ) -> PullFacts<'a> {
        let repo = key(repository);
        let at_head = (repo.clone(), pull.head_sha.clone());
        let of_pull = (repo, pull.number);
        PullFacts {
            pull,
            pass,
            labelled: self.labelled.get(&of_pull).map_or(&[][..], Vec::as_slice),
            commits: self.commits.get(&of_pull).map_or(&[][..], Vec::as_slice),
            reviews: self.reviews.get(&of_pull).map_or(&[][..], Vec::as_slice),
            check_suites: self
                .check_suites
                .get(&at_head)
                .map_or(&[][..], Vec::as_slice),
            workflow_runs: self
                .workflow_runs
                .get(&at_head)
                .map_or(&[][..], Vec::as_slice),
        }
    }
}

/// What reconcile does for one waiting play.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The awaited event has happened: deliver it.
    Deliver(Deliver),
    /// It has not happened yet; the pull request of the task if it has one.
    NotYet {
        awaited: Awaited,
        pull: Option<u64>,
    },
    /// Several open pull requests name the task: which one is meant is not guessed.
    Ambiguous(Vec<u64>),
    CannotTell(CannotTell),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deliver {
    /// The event GitHub shows: the one that releases the wait, or the one that fails it.
    pub awaited: Awaited,
    pub verdict: Verdict,
    /// The task whose pull request showed the event.
    pub task: TaskId,
    pub pull: u64,
    /// reconcile.STAGE.prNUMBER: the same for every run, so that a second delivery is a no-op.
    pub delivery_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CannotTell {
    /// A stage of a pipeline given as a bare list (`--stages`): no event is known for it.
    StageWithoutEvent,
    /// The play has no task-id or repository label.
    Unlabelled,
}

/// Decides from what GitHub said; a play whose facts were not read is one GitHub has nothing
/// for (the command reads them all first).
pub fn decide(play: &WaitingPlay, facts: &GitHubFacts) -> Decision {
    let (awaited, reads, repository, task) = match play.awaits() {
        Ok(awaits) => awaits,
        Err(why) => return Decision::CannotTell(why),
    };
    let awaited = awaited.clone();
    let pull = match facts.pull_of(repository, task, play.created) {
        Ok(Some(pull)) => pull,
        Ok(None) => {
            return Decision::NotYet {
                awaited,
                pull: None,
            };
        }
        Err(numbers) => return Decision::Ambiguous(numbers),
    };
    // What releases the wait first; else what fails it or sends it back, when GitHub's
    // answers already read show it (a failed check suite at a CI gate, a change request at the
    // approval wait: the same read as the releasing event's).
    let shown = facts.facts_of(repository, pull, play.pass);
    let otherwise = [
        (play.failing.as_ref(), Verdict::Fails),
        (play.sending_back.as_ref(), Verdict::SendsBack),
    ]
    .into_iter()
    .find_map(|(event, verdict)| {
        let event = event
            .filter(|event| Reads::in_pass(event, &play.pass) == reads && shown.shows(event))?;
        Some((event.clone(), verdict))
    });
    let (awaited, verdict) = match otherwise {
        _ if shown.shows(&awaited) => (awaited, Verdict::Releases),
        Some(decided) => decided,
        None => {
            return Decision::NotYet {
                awaited,
                pull: Some(pull.number),
            };
        }
    };
    Decision::Deliver(Deliver {
        awaited,
        verdict,
        task: task.clone(),
        pull: pull.number,
        delivery_id: github::delivery_id(&play.stage, pull, play.pass.number),
    })
}

/// What `reconcile --outputs-dir` writes, one number a file, and the reconcile CronWorkflow
/// reads back as output parameters of the same names for its metrics (render.rs): waits
/// recovered, and per waiting stage the plays waiting there and the oldest wait in seconds.
pub mod outputs {
    use crate::stage::Stage;

    pub const RECOVERED: &str = "recovered";

    pub fn waiting(stage: &Stage) -> String {
        format!("waiting-{}", stage.name())
    }

    pub fn oldest_wait_seconds(stage: &Stage) -> String {
        format!("oldest-wait-seconds-{}", stage.name())
    }
}

/// The failure a run exits with, of its plays' failures (in workflow-name order): one that gave
/// up wins, since it is the one worth running again for (the CronWorkflow retries exit 6);
/// else the first of the kind an operator must act on first: failed, forbidden, not found,
/// refused, bad input. So the code follows what happened, never the plays' names. Its line
/// says how many failed; the report lists each.
pub fn run_failure(failures: Vec<Error>) -> Option<Error> {
    let rank = |kind: Kind| {
        [
            Kind::GaveUp,
            Kind::Failed,
            Kind::Forbidden,
            Kind::NotFound,
            Kind::Refused,
            Kind::Usage,
            Kind::Mismatch,
        ]
        .iter()
        .position(|k| *k == kind)
    };
    let count = failures.len();
    let chosen = failures.into_iter().min_by_key(|err| rank(err.kind))?;
    if count == 1 {
        return Some(chosen);
    }
    Some(Error::new(
        chosen.kind,
        format!(
            "{count} plays failed; the report lists each. {}",
            chosen.message()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::Pipeline;

    fn play(name: &str, stage: &str, task: &str, repository: &str) -> WaitingPlay {
        let repository_name = repository.to_string();
        let pipeline = Pipeline::default();
        let stage = pipeline.stage(stage);
        WaitingPlay {
            workflow: name.into(),
            awaited: pipeline.awaited(&stage).cloned(),
            failing: pipeline.failing(&stage).cloned(),
            sending_back: pipeline.sending_back(&stage).map(|back| back.event.clone()),
            stage,
            task_id: TaskId::parse(task).ok(),
            repository: Repository::parse(&repository_name).ok(),
            repository_name,
            since: None,
            created: None,
            pass: Pass::default(),
        }
    }

    /// A play in pass 2, begun at 10:00:00.5 (so 10:00:01 is its first whole second).
    fn in_pass_two(name: &str, stage: &str) -> WaitingPlay {
        WaitingPlay {
            pass: Pass {
                number: 2,
                began: Some("2026-12-07T10:00:00.5Z".parse().unwrap()),
                annotated: true,
            },
            ..play(name, stage, "1", "acme/widgets")
        }
    }

    fn at(time: &str) -> Option<Timestamp> {
        Some(format!("2026-12-07T{time}Z").parse().unwrap())
    }

    /// In a later pass only what happened since it began counts: the label still on from the
    /// first pass, a review before the change request, a commit before the send-back say
    /// nothing; a label added, a review or a push since do, under a delivery id of the pass.
    #[test]
    fn a_later_pass_reads_what_happened_since_it_began_and_nothing_before() {
        let widgets = Repository::parse("acme/widgets").unwrap();
        let mut facts = GitHubFacts::default();
        facts.add_pulls(&widgets, vec![pull(1, "task-1", &["ready-for-qa"])]);
        let qa = in_pass_two("a", "waiting-ready-for-qa");
        assert_eq!(
            facts.next_read(&qa),
            Some(Read::LabelEvents(widgets.clone(), 1))
        );
        let added = |time| Labelled {
            label: "ready-for-qa".into(),
            at: at(time),
        };
        facts.add_label_events(&widgets, 1, vec![added("09:59:00"), added("10:00:00")]);
        assert_eq!(facts.next_read(&qa), None);
        assert!(matches!(decide(&qa, &facts), Decision::NotYet { .. }));
        facts.add_label_events(&widgets, 1, vec![added("09:59:00"), added("10:00:01")]);
        let Decision::Deliver(delivered) = decide(&qa, &facts) else {
            panic!("{:?}", decide(&qa, &facts))
        };
        assert_eq!(
            delivered.delivery_id,
            "reconcile.waiting-ready-for-qa.pass2.pr1"
        );

        let pushed = in_pass_two("b", "waiting-pr-created");
        assert_eq!(
            facts.next_read(&pushed),
            Some(Read::Commits(widgets.clone(), 1))
        );
        facts.add_commits(&widgets, 1, vec![Commit { at: at("09:00:00") }]);
        assert!(matches!(decide(&pushed, &facts), Decision::NotYet { .. }));
        facts.add_commits(
            &widgets,
            1,
            vec![Commit { at: at("09:00:00") }, Commit { at: at("10:03:00") }],
        );
        assert!(matches!(
            decide(&pushed, &facts),
            Decision::Deliver(Deliver {
                awaited: Awaited::PullRequestPushed,
                ..
            })
        ));

        // Tess approved in pass 1 (before the change request that began pass 2): nothing; her
        // change request of pass 2 sends the play back again; her approval after it releases.
        let approval = in_pass_two("c", "waiting-pr-approved");
        let reviewed = |state, time| Review {
            submitted_at: at(time),
            ..review(7, state)
        };
        let mut reviews = vec![
            reviewed("APPROVED", "09:58:00"),
            reviewed("CHANGES_REQUESTED", "09:59:00"),
        ];
        facts.add_reviews(&widgets, 1, reviews.clone());
        assert!(matches!(decide(&approval, &facts), Decision::NotYet { .. }));
        reviews.push(reviewed("CHANGES_REQUESTED", "10:02:00"));
        facts.add_reviews(&widgets, 1, reviews.clone());
        let Decision::Deliver(sent) = decide(&approval, &facts) else {
            panic!("{:?}", decide(&approval, &facts))
        };
        assert_eq!(
            (sent.awaited, sent.verdict),
            (Awaited::ReviewChangesRequested, Verdict::SendsBack)
        );
        reviews.push(reviewed("APPROVED", "10:03:00"));
        facts.add_reviews(&widgets, 1, reviews);
        let Decision::Deliver(released) = decide(&approval, &facts) else {
            panic!("{:?}", decide(&approval, &facts))
        };
        assert_eq!(
            (released.awaited, released.verdict),
            (Awaited::ReviewApproved, Verdict::Releases)
        );

        // In the first pass, the pull request itself says it, as before.
        let first = play("d", "waiting-ready-for-qa", "1", "acme/widgets");
        assert_eq!(facts.next_read(&first), None);
        assert!(matches!(decide(&first, &facts), Decision::Deliver(_)));
    }

    fn ready_for_qa() -> Awaited {
        Awaited::LabelAdded {
            label: "ready-for-qa".into(),
        }
    }

    fn pull(number: u64, branch: &str, labels: &[&str]) -> PullRequest {
        PullRequest {
            number,
            head_ref: branch.into(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            head_sha: format!("sha{number}"),
            merged: false,
            updated_at: None,
        }
    }

    fn review(reviewer: u64, state: &str) -> Review {
        Review {
            reviewer,
            state: serde_json::from_value(serde_json::json!(state)).unwrap(),
            submitted_at: None,
        }
    }

    fn facts() -> GitHubFacts {
        let widgets = Repository::parse("acme/widgets").unwrap();
        let mut facts = GitHubFacts::default();
        facts.add_pulls(
            &widgets,
            vec![
                pull(1, "task-1", &[]),
                pull(2, "feature/task-2-rename", &["ready-for-qa"]),
                pull(3, "task-3", &["ready-for-qa"]),
                pull(4, "task-4", &[]),
                pull(5, "task-5", &[]),
                pull(6, "task-5-again", &[]),
            ],
        );
        facts.add_reviews(&widgets, 3, vec![review(7, "APPROVED")]);
        facts.add_reviews(
            &widgets,
            4,
            vec![review(7, "APPROVED"), review(7, "DISMISSED")],
        );
        facts
    }

    #[test]
    fn each_play_gets_the_decision_github_supports() {
        let facts = facts();
        let decide =
            |name, stage, task, repository| decide(&play(name, stage, task, repository), &facts);
        // Each delivered play's task is its pull request's number.
        let delivered = |awaited, pull: u64, stage: &str| {
            Decision::Deliver(Deliver {
                awaited,
                verdict: Verdict::Releases,
                task: TaskId::parse(&pull.to_string()).unwrap(),
                pull,
                delivery_id: format!("reconcile.{stage}.pr{pull}"),
            })
        };
        assert_eq!(
            decide("a", "waiting-pr-created", "1", "acme/widgets"),
            delivered(Awaited::PullRequestPushed, 1, "waiting-pr-created")
        );
        // GitHub's names are case-insensitive.
        assert_eq!(
            decide("b", "waiting-ready-for-qa", "2", "Acme/Widgets"),
            delivered(ready_for_qa(), 2, "waiting-ready-for-qa")
        );
        assert_eq!(
            decide("c", "waiting-pr-approved", "3", "acme/widgets"),
            delivered(Awaited::ReviewApproved, 3, "waiting-pr-approved")
        );
        assert_eq!(
            decide("d", "waiting-pr-approved", "4", "acme/widgets"),
            Decision::NotYet {
                awaited: Awaited::ReviewApproved,
                pull: Some(4)
            },
            "a dismissed approval no longer counts"
        );
        assert_eq!(
            decide("e", "waiting-ready-for-qa", "1", "acme/widgets"),
            Decision::NotYet {
                awaited: ready_for_qa(),
                pull: Some(1)
            }
        );
        assert_eq!(
            decide("f", "waiting-pr-created", "9", "acme/widgets"),
            Decision::NotYet {
                awaited: Awaited::PullRequestPushed,
                pull: None
            }
        );
        assert_eq!(
            decide("g", "waiting-pr-created", "5", "acme/widgets"),
            Decision::Ambiguous(vec![5, 6])
        );
        assert_eq!(
            decide("h", "waiting-pr-created", "1", "acme/gadgets"),
            Decision::NotYet {
                awaited: Awaited::PullRequestPushed,
                pull: None
            },
            "another repository's pull request is not the play's"
        );
        assert_eq!(
            decide("i", "waiting-pr-created", "", "acme/widgets"),
            Decision::CannotTell(CannotTell::Unlabelled)
        );
        assert_eq!(
            decide("j", "waiting-pr-created", "1", "not a repository"),
            Decision::CannotTell(CannotTell::Unlabelled)
        );
    }

    #[test]
    fn a_stage_of_a_pipeline_of_ones_own_has_no_event_reconcile_knows() {
        let pipeline = Pipeline::parse("pending,waiting-build,done").unwrap();
        let mut waiting = play("a", "waiting-pr-created", "1", "acme/widgets");
        waiting.stage = pipeline.stage("waiting-build");
        waiting.awaited = pipeline.awaited(&waiting.stage).cloned();
        assert_eq!(
            decide(&waiting, &facts()),
            Decision::CannotTell(CannotTell::StageWithoutEvent)
        );
    }

    #[test]
    fn reviews_are_read_only_for_the_one_pull_request_of_a_play_awaiting_approval() {
        let mut facts = facts();
        let widgets = Repository::parse("acme/widgets").unwrap();
        let approval = play("a", "waiting-pr-approved", "1", "acme/widgets");
        assert_eq!(
            facts.next_read(&approval),
            Some(Read::Reviews(widgets.clone(), 1))
        );
        facts.add_reviews(&widgets, 1, vec![]);
        assert_eq!(facts.next_read(&approval), None, "read once");
        for waiting in [
            play("b", "waiting-ready-for-qa", "2", "acme/widgets"),
            play("c", "waiting-pr-approved", "5", "acme/widgets"),
        ] {
            assert_eq!(facts.next_read(&waiting), None, "{waiting:?}");
        }
        // No open pull request of task 9: the one merged since the play began is its own, and
        // its reviews are read (an approval whose webhook was lost, then an auto-merge; the
        // soak of the gated pipeline found plays left waiting for it).
        let merged_since = play("d", "waiting-pr-approved", "9", "acme/widgets");
        assert_eq!(
            facts.next_read(&merged_since),
            Some(Read::MergedPulls {
                repository: widgets.clone(),
                since: None
            })
        );
        let merged = PullRequest {
            merged: true,
            ..pull(9, "task-9-x", &[])
        };
        facts.add_merged(&widgets, None, vec![merged]);
        assert_eq!(
            facts.next_read(&merged_since),
            Some(Read::Reviews(widgets.clone(), 9))
        );
        facts.add_reviews(&widgets, 9, vec![review(7, "APPROVED")]);
        assert!(matches!(
            decide(&merged_since, &facts),
            Decision::Deliver(Deliver { pull: 9, .. })
        ));
        let gadgets = play("e", "waiting-pr-created", "1", "ACME/gadgets");
        assert_eq!(
            facts.next_read(&gadgets),
            Some(Read::OpenPulls(Repository::parse("ACME/gadgets").unwrap()))
        );
        let widgets_again = play("f", "waiting-pr-created", "1", "ACME/widgets");
        assert_eq!(facts.next_read(&widgets_again), None, "names ignore case");
    }

    /// A gated pipeline's waits: the check suites or workflow runs on the pull request's head,
    /// read once per head; the merged pull requests, read back to the play's creation, once.
    #[test]
    fn gates_read_what_completed_on_the_head_and_merges_since_the_play_began() {
        let gated = crate::fixtures::gated();
        let at = |stage: &str, task: &str, created: i64| {
            let mut waiting = play("g", "waiting-pr-created", task, "acme/widgets");
            waiting.stage = gated.stage(stage);
            waiting.awaited = gated.awaited(&waiting.stage).cloned();
            waiting.failing = gated.failing(&waiting.stage).cloned();
            waiting.created = Some(Timestamp::from_second(created).unwrap());
            waiting
        };
        let widgets = Repository::parse("acme/widgets").unwrap();
        let mut facts = facts();
        let completed = |name: &str, conclusion: &str| Completed {
            name: name.into(),
            conclusion: conclusion.into(),
            updated_at: None,
        };

        let ci = at("waiting-ci", "1", 100);
        assert_eq!(
            facts.next_read(&ci),
            Some(Read::CheckSuites(widgets.clone(), "sha1".into()))
        );
        facts.add_check_suites(&widgets, "sha1", vec![completed("", "cancelled")]);
        assert_eq!(facts.next_read(&ci), None);
        assert!(matches!(
            decide(&ci, &facts),
            Decision::NotYet { pull: Some(1), .. }
        ));
        // A failed suite is the gate's failedBy: delivered as failing, with its own facts.
        facts.add_check_suites(&widgets, "sha1", vec![completed("", "failure")]);
        let Decision::Deliver(failed) = decide(&ci, &facts) else {
            panic!("a failed suite fails the play at the gate")
        };
        assert_eq!(failed.verdict, Verdict::Fails);
        let event = ci.event("argo", &failed, "pod/reconcile", Timestamp::UNIX_EPOCH);
        assert_eq!(event.pass, Some(1), "the pass it was read for");
        let facts_given = event.facts.unwrap();
        assert_eq!(
            gated.verdict(&ci.stage, &facts_given),
            Some(Verdict::Fails),
            "resume decides the same: {facts_given}"
        );
        // A passing suite beside it releases the wait: which webhook came first is not known.
        facts.add_check_suites(
            &widgets,
            "sha1",
            vec![completed("", "failure"), completed("", "success")],
        );
        assert!(matches!(
            decide(&ci, &facts),
            Decision::Deliver(Deliver {
                pull: 1,
                verdict: Verdict::Releases,
                ..
            })
        ));

        let run = at("waiting-run", "2", 100);
        assert_eq!(
            facts.next_read(&run),
            Some(Read::WorkflowRuns(widgets.clone(), "sha2".into()))
        );
        facts.add_workflow_runs(&widgets, "sha2", vec![completed("Lint", "success")]);
        assert!(matches!(decide(&run, &facts), Decision::NotYet { .. }));
        facts.add_workflow_runs(&widgets, "sha2", vec![completed("CI", "success")]);
        assert!(matches!(decide(&run, &facts), Decision::Deliver(_)));

        // Task 1 still has its open pull request: not merged, and nothing more to read.
        assert_eq!(facts.next_read(&at("waiting-merge", "1", 100)), None);
        let merge = at("waiting-merge", "7", 100);
        let since = Some(Timestamp::from_second(100).unwrap());
        assert_eq!(
            facts.next_read(&merge),
            Some(Read::MergedPulls {
                repository: widgets.clone(),
                since
            })
        );
        let closed = |number, merged, updated: i64| PullRequest {
            merged,
            updated_at: Some(Timestamp::from_second(updated).unwrap()),
            ..pull(number, "task-7-again", &[])
        };
        // Before the play began, and closed without a merge: neither is its task's merge.
        facts.add_merged(
            &widgets,
            since,
            vec![closed(70, true, 50), closed(71, false, 150)],
        );
        assert_eq!(facts.next_read(&merge), None);
        assert_eq!(
            decide(&merge, &facts),
            Decision::NotYet {
                awaited: Awaited::PullRequestMerged,
                pull: None
            }
        );
        facts.add_merged(&widgets, since, vec![closed(72, true, 150)]);
        assert!(matches!(
            decide(&merge, &facts),
            Decision::Deliver(Deliver { pull: 72, .. })
        ));
        // A play begun earlier needs the list read further back.
        assert!(facts.next_read(&at("waiting-merge", "8", 10)).is_some());
    }

    #[test]
    fn a_run_exits_with_the_failure_worth_a_retry_whatever_the_plays_names() {
        let refused = || Error::refused("workflow a-play: refused");
        let gave_up = || Error::gave_up("workflow b-play: gave up");
        for failures in [vec![refused(), gave_up()], vec![gave_up(), refused()]] {
            let failure = run_failure(failures).unwrap();
            assert_eq!(failure.kind, Kind::GaveUp);
            assert_eq!(
                failure.message(),
                "2 plays failed; the report lists each. workflow b-play: gave up"
            );
        }
        let failure = run_failure(vec![refused(), Error::failed("c"), refused()]).unwrap();
        assert_eq!(failure.kind, Kind::Failed);
        let first = run_failure(vec![refused(), Error::refused("second")]).unwrap();
        assert!(
            first.message().ends_with("workflow a-play: refused"),
            "{first}"
        );
        assert_eq!(
            run_failure(vec![refused()]).unwrap().message(),
            "workflow a-play: refused"
        );
        assert!(run_failure(Vec::new()).is_none());
    }
}
