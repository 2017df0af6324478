//! What `reconcile` decides for each play that waits, as data: the plays' stage records and
//! what GitHub says in, one decision per play out. The command reads both, asks here, delivers
//! through resume's path, and renders.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::error::{Error, Kind};
use crate::event::Awaited;
use crate::github::{self, PullRequest, Reads, Review};
use crate::labels::{Repository, TaskId};
use crate::latch::Delivery;
use crate::record::StageRecord;
use crate::resume::EventRequest;
use crate::stage::{Pipeline, Stage};

/// A play at a waiting stage that has not ended.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingPlay {
    pub workflow: String,
    pub stage: Stage,
    /// The event that releases its wait, as the pipeline defines it.
    pub awaited: Option<Awaited>,
    /// None when its label holds no task id (none, or not a valid one).
    pub task_id: Option<TaskId>,
    /// As the play's label or annotation names it, parsed when it parses.
    pub repository_name: String,
    pub repository: Option<Repository>,
    /// Since when it waits: the change that entered the stage.
    pub since: Option<Timestamp>,
}

/// The plays among `records` that wait, in name order.
pub fn waiting_plays(
    pipeline: &Pipeline,
    records: impl IntoIterator<Item = StageRecord>,
) -> Vec<WaitingPlay> {
    let mut waiting: Vec<WaitingPlay> = records
        .into_iter()
        .filter_map(|record| {
            let stage = record.stage.clone()?;
            if record.ended || !pipeline.is_waiting(&stage) {
                return None;
            }
            let repository_name = record.repository.clone().unwrap_or_default();
            Some(WaitingPlay {
                since: record.waiting_since(pipeline),
                workflow: record.name,
                awaited: pipeline.awaited(&stage).cloned(),
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
        let reads = github::readable(awaited).ok_or(CannotTell::EventNotRead)?;
        match (&self.repository, &self.task_id) {
            (Some(repository), Some(task)) => Ok((awaited, reads, repository, task)),
            _ => Err(CannotTell::Unlabelled),
        }
    }

    /// The event to deliver for a `Deliver` decision, as `stagectl resume` would take it.
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
            },
        }
    }
}

/// What GitHub said, read before anything is written: the open pull requests of each
/// repository, and the reviews of the pull requests whose approval a play awaits.
#[derive(Debug, Default)]
pub struct GitHubFacts {
    pulls: BTreeMap<String, Vec<PullRequest>>,
    reviews: BTreeMap<(String, u64), Vec<Review>>,
}

/// GitHub's names are case-insensitive: one key per repository however a play spells it.
fn key(repository: &Repository) -> String {
    repository.full_name().to_ascii_lowercase()
}

impl GitHubFacts {
    /// Whether the repository's pull requests are still to be read.
    pub fn lacks_pulls(&self, repository: &Repository) -> bool {
        !self.pulls.contains_key(&key(repository))
    }

    pub fn add_pulls(&mut self, repository: &Repository, pulls: Vec<PullRequest>) {
        self.pulls.insert(key(repository), pulls);
    }

    /// The pull request whose reviews the play needs and are still to be read: it awaits an
    /// approval, and one open pull request names its task.
    pub fn lacks_reviews(&self, play: &WaitingPlay) -> Option<u64> {
        let (_, reads, repository, task) = play.awaits().ok()?;
        let pulls = self.pulls.get(&key(repository))?;
        let pull = github::pull_of_task(pulls, task.as_str()).ok()??;
        (reads == Reads::Reviews && !self.reviews.contains_key(&(key(repository), pull.number)))
            .then_some(pull.number)
    }

    pub fn add_reviews(&mut self, repository: &Repository, pull: u64, reviews: Vec<Review>) {
        self.reviews.insert((key(repository), pull), reviews);
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
    pub awaited: Awaited,
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
    /// An event reconcile does not read from GitHub (yet): a merge, a check suite, a workflow
    /// run.
    EventNotRead,
    /// The play has no task-id or repository label.
    Unlabelled,
}

/// Decides from what GitHub said; a play whose facts were not read is one GitHub has nothing
/// for (the command reads them all first).
pub fn decide(play: &WaitingPlay, facts: &GitHubFacts) -> Decision {
    let (awaited, _, repository, task) = match play.awaits() {
        Ok(awaits) => awaits,
        Err(why) => return Decision::CannotTell(why),
    };
    let awaited = awaited.clone();
    let pulls = facts
        .pulls
        .get(&key(repository))
        .map_or(&[][..], Vec::as_slice);
    let pull = match github::pull_of_task(pulls, task.as_str()) {
        Ok(Some(pull)) => pull,
        Ok(None) => {
            return Decision::NotYet {
                awaited,
                pull: None,
            };
        }
        Err(numbers) => return Decision::Ambiguous(numbers),
    };
    let reviews = facts
        .reviews
        .get(&(key(repository), pull.number))
        .map_or(&[][..], Vec::as_slice);
    let happened = github::events_shown(pull, reviews)
        .iter()
        .any(|event| awaited.is_met_by(event));
    if !happened {
        return Decision::NotYet {
            awaited,
            pull: Some(pull.number),
        };
    }
    Decision::Deliver(Deliver {
        awaited,
        task: task.clone(),
        pull: pull.number,
        delivery_id: github::delivery_id(&play.stage, pull),
    })
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

    fn play(name: &str, stage: &str, task: &str, repository: &str) -> WaitingPlay {
        let repository_name = repository.to_string();
        let pipeline = Pipeline::default();
        let stage = pipeline.stage(stage);
        WaitingPlay {
            workflow: name.into(),
            awaited: pipeline.awaited(&stage).cloned(),
            stage,
            task_id: TaskId::parse(task).ok(),
            repository: Repository::parse(&repository_name).ok(),
            repository_name,
            since: None,
        }
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
        }
    }

    fn review(reviewer: u64, state: &str) -> Review {
        Review {
            reviewer,
            state: serde_json::from_value(serde_json::json!(state)).unwrap(),
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
                task: TaskId::parse(&pull.to_string()).unwrap(),
                pull,
                delivery_id: format!("reconcile.{stage}.pr{pull}"),
            })
        };
        assert_eq!(
            decide("a", "waiting-pr-created", "1", "acme/widgets"),
            delivered(Awaited::PullRequestOpened, 1, "waiting-pr-created")
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
                awaited: Awaited::PullRequestOpened,
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
                awaited: Awaited::PullRequestOpened,
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
        assert_eq!(
            facts.lacks_reviews(&play("a", "waiting-pr-approved", "1", "acme/widgets")),
            Some(1)
        );
        facts.add_reviews(&widgets, 1, vec![]);
        assert_eq!(
            facts.lacks_reviews(&play("a", "waiting-pr-approved", "1", "acme/widgets")),
            None,
            "read once"
        );
        for waiting in [
            play("b", "waiting-ready-for-qa", "2", "acme/widgets"),
            play("c", "waiting-pr-approved", "5", "acme/widgets"),
            play("d", "waiting-pr-approved", "9", "acme/widgets"),
        ] {
            assert_eq!(facts.lacks_reviews(&waiting), None, "{waiting:?}");
        }
        assert!(facts.lacks_pulls(&Repository::parse("acme/gadgets").unwrap()));
        assert!(!facts.lacks_pulls(&Repository::parse("ACME/widgets").unwrap()));
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
