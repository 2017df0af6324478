//! `resume` as plans: which play of a task an event is for, and what it does to that play
//! (latch it, resume its wait, or nothing).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::argo::{self, SuspendNode};
use std::borrow::Cow;

use crate::change::Decided;
use crate::error::{Error, Result};
use crate::event::{EventFacts, Verdict};
use crate::labels::{self, Repository, TaskId};
use crate::latch::{self, Delivery, LatchSlot, SeenAs};
use crate::pass::Pass;
use crate::patch;
use crate::pipeline;
use crate::record::{current_stage, has_ended};
use crate::stage::{Pipeline, Stage};
use crate::{Observed, Step};

/// An event for the play of a task, validated; `delivery` carries the time and the actor.
#[derive(Debug, Clone)]
pub struct EventRequest {
    /// Where the plays are looked for.
    pub namespace: String,
    pub stage: Stage,
    pub task_id: TaskId,
    pub repository: Option<Repository>,
    pub delivery: Delivery,
    /// What the webhook's payload says, when a Sensor passed it: checked against the play's own
    /// pipeline with the rule reconcile uses too ([`crate::event::Awaited::is_met_by`]).
    pub facts: Option<EventFacts>,
    /// The pass of the play the event is known to be of: reconcile reads GitHub for the pass
    /// the play was in when it listed the plays, and a play sent back since takes nothing of
    /// what it found. A webhook's pass is known only by when it happened (`facts.occurred_at`).
    pub pass: Option<u32>,
}

/// The wait of a play an event is for, in the play's own pipeline, and what the event does to it.
enum OwnWait<'p> {
    At(Cow<'p, Pipeline>, Stage, Verdict),
    /// None of its waits: the answer says why.
    Nowhere(Step<Resolution>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Latched,
    Resumed,
    /// The event failed the play at its wait (the wait's `failedBy`, or a `sentBackBy` in the
    /// last pass allowed).
    Failed,
    /// The event sent the play back to an earlier stage for its next pass (`sentBackBy`).
    #[serde(rename = "sent-back")]
    SentBack,
    Noop,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Latched => "latched",
            Outcome::Resumed => "resumed",
            Outcome::Failed => "failed",
            Outcome::SentBack => "sent-back",
            Outcome::Noop => "noop",
        }
    }
}

/// What an event did to its play, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub outcome: Outcome,
    pub detail: String,
}

fn resolved(outcome: Outcome, detail: String) -> Resolution {
    Resolution { outcome, detail }
}

/// The play an event goes to, one of those it was chosen from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Chosen<'a, P> {
    /// A play that can take the event: plan it with [`EventRequest::plan`].
    Active(&'a P),
    /// No play of the task can take it; this one answers (see [`EventRequest::answer_ended`]).
    Ended(&'a P),
}

/// What a play is chosen by: its metadata. A list of plays is metadata only, or whole
/// workflows (`Observed`), whose nodes the chosen one's plan then needs.
pub trait Play {
    fn meta(&self) -> &ObjectMeta;
}

impl Play for ObjectMeta {
    fn meta(&self) -> &ObjectMeta {
        self
    }
}

impl Play for Observed {
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

fn name_of(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn refuse<T>(meta: &ObjectMeta, why: String) -> Step<T> {
    Step::Refuse(format!("workflow {}: {why}", name_of(meta)))
}

impl EventRequest {
    /// The labels every play of the task (and repository) carries, to list them by.
    pub fn play_labels(&self) -> Vec<(&'static str, String)> {
        let mut selector = vec![
            (labels::WORKFLOW_TYPE, labels::PLAY.to_string()),
            (labels::TASK_ID, self.task_id.to_string()),
        ];
        if let Some(repository) = &self.repository {
            selector.push((labels::REPOSITORY, repository.label_value()));
        }
        selector
    }

    fn delivery_id(&self) -> Option<&str> {
        self.delivery.delivery_id.as_deref()
    }

    /// Chooses, from every play of the task, the one the event is for:
    /// 1. the play that has already seen this delivery id, so that a redelivery never reaches a
    ///    later play of the same task;
    /// 2. else the one play that can take an event: not ended, not failed (a failed play whose
    ///    exit handler still runs takes none); of several, the one the template's mutex lets
    ///    run (`Running`), the others being queued behind it;
    /// 3. else, when none can, the newest play (one still running first), to answer for what
    ///    the event is.
    pub fn choose_play<'a, P: Play>(
        &self,
        pipeline: &Pipeline,
        plays: &'a [P],
    ) -> Result<Chosen<'a, P>> {
        let can_take_events = |play: &P| {
            let meta = play.meta();
            !has_ended(meta) && !current_stage(meta, pipeline).is_some_and(|s| s.is_failed())
        };
        let chosen = |play: &'a P| {
            if can_take_events(play) {
                Chosen::Active(play)
            } else {
                Chosen::Ended(play)
            }
        };
        if let Some(id) = self.delivery_id()
            && let Some(seen_by) = plays
                .iter()
                .find(|play| latch::delivery_seen(play.meta(), id).is_some())
        {
            return Ok(chosen(seen_by));
        }
        let mut eligible: Vec<&P> = plays.iter().filter(|play| can_take_events(play)).collect();
        if eligible.len() > 1 {
            let running: Vec<&P> = eligible
                .iter()
                .copied()
                .filter(|play| label(play.meta(), labels::ARGO_PHASE) == Some("Running"))
                .collect();
            if running.len() == 1 {
                eligible = running;
            }
        }
        let of = match &self.repository {
            Some(repository) => format!("task {} of {}", self.task_id, repository.full_name()),
            None => format!("task {}", self.task_id),
        };
        match eligible.as_slice() {
            // A failed play still running its exit handler speaks before any that has ended.
            [] => plays
                .iter()
                .max_by_key(|play| {
                    let meta = play.meta();
                    (!has_ended(meta), meta.creation_timestamp.as_ref().map(|t| t.0))
                })
                .map(chosen)
                .ok_or_else(|| {
                    Error::not_found(format!(
                        "no play workflow of {of} in namespace {}: check --task-id, --repository and -n",
                        self.namespace
                    ))
                }),
            [one] => Ok(chosen(one)),
            several => Err(Error::refused(format!(
                "{} active play workflows of {of} in namespace {} ({}); none was touched: pass --repository, or end the extra plays",
                several.len(),
                self.namespace,
                several
                    .iter()
                    .filter_map(|play| play.meta().name.as_deref())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The play's own pipeline ([`pipeline::of_play`]) and the wait of it this event is for:
    /// the stage the Sensor named, when it is a wait of the play's pipeline that the event's
    /// facts release; else the wait the facts release (a Sensor rendered from another
    /// definition than the play carries). An event that releases no wait of the play changes
    /// nothing; a stage named by hand that the play's pipeline does not wait at is refused.
    fn own_wait<'p>(&self, pipeline: &'p Pipeline, meta: &ObjectMeta) -> OwnWait<'p> {
        let own = match pipeline::of_play(meta, pipeline) {
            Ok(own) => own,
            Err(err) => return OwnWait::Nowhere(Step::Fail(err.kind, err.message().to_string())),
        };
        let named = own.stage(self.stage.name());
        // Without facts (by hand), an event for a wait releases it.
        let verdict = match &self.facts {
            Some(facts) => own.verdict(&named, facts),
            None => Some(Verdict::Releases),
        };
        if own.is_waiting(&named)
            && let Some(verdict) = verdict
        {
            return OwnWait::At(own, named, verdict);
        }
        let Some(facts) = &self.facts else {
            return OwnWait::Nowhere(refuse(
                meta,
                format!(
                    "its pipeline {} ({own}) has no wait {}",
                    own.name(),
                    self.stage
                ),
            ));
        };
        match own.decided_by(facts) {
            Some((stage, verdict)) => OwnWait::At(own, stage, verdict),
            None => OwnWait::Nowhere(Step::Done(resolved(
                Outcome::Noop,
                format!(
                    "the event ({facts}) decides no wait of pipeline {}, which the play carries",
                    own.name()
                ),
            ))),
        }
    }

    /// This event, at `stage` of the play's own pipeline, doing `verdict` to its wait.
    fn at(&self, stage: Stage, verdict: Verdict) -> Self {
        let mut delivery = self.delivery.clone();
        delivery.verdict = verdict;
        Self {
            stage,
            delivery,
            ..self.clone()
        }
    }

    /// What the event does to the play as read (metadata and node status), decided by the
    /// play's own pipeline.
    pub fn plan(&self, pipeline: &Pipeline, observed: &Observed) -> Step<Resolution> {
        if let Some(answer) = self.redelivered(&observed.meta) {
            return Step::Done(answer);
        }
        match self.own_wait(pipeline, &observed.meta) {
            OwnWait::At(own, stage, verdict) => self.at(stage, verdict).plan_at(&own, observed),
            OwnWait::Nowhere(answer) => answer,
        }
    }

    fn plan_at(&self, pipeline: &Pipeline, observed: &Observed) -> Step<Resolution> {
        let stage = &self.stage;
        let meta = &observed.meta;
        let current = match self.stage_taking_events(pipeline, meta) {
            Ok(current) => current,
            Err(why) => return refuse(meta, why),
        };
        let pass = match Pass::of(meta) {
            Ok(pass) => pass,
            Err(why) => return refuse(meta, why),
        };
        if let Some(of) = self.pass.filter(|of| *of != pass.number) {
            return Step::Done(resolved(
                Outcome::Noop,
                format!(
                    "it was found on GitHub for pass {of} of the play, which is in pass {} now: \
                     an event of another pass releases nothing of this one",
                    pass.number
                ),
            ));
        }
        let occurred = self.facts.as_ref().and_then(|facts| facts.occurred_at);
        if !pass.admits(occurred) {
            return Step::Done(resolved(
                Outcome::Noop,
                format!(
                    "it happened on GitHub at {}, before pass {} of the play began (at {}): an \
                     event of an earlier pass releases nothing of this one",
                    occurred.map(|t| t.to_string()).unwrap_or_default(),
                    pass.number,
                    pass.began.map(|t| t.to_string()).unwrap_or_default()
                ),
            ));
        }
        if pipeline.is_before(&current, stage) {
            return self.latch(meta, &current, pass);
        }
        if current != *stage {
            return Step::Done(resolved(
                Outcome::Noop,
                format!("the workflow is at {current}, past {stage}: that wait is over"),
            ));
        }
        if let Some(delivery) = latch::satisfied_early(meta, stage) {
            return Step::Done(resolved(
                Outcome::Noop,
                format!(
                    "the wait of {stage} was satisfied early by {}",
                    delivery.describe()
                ),
            ));
        }
        match self.delivery.verdict {
            Verdict::Releases => self.resume_wait(observed, pass),
            Verdict::Fails | Verdict::SendsBack => self.decide_wait(pipeline, observed, pass),
        }
    }

    /// The answer to a delivery the play has already seen. Our own record, to the nanosecond,
    /// means an earlier attempt of this very process landed although its answer was lost (a
    /// timeout, a dropped connection): it answers as that attempt would have.
    fn redelivered(&self, meta: &ObjectMeta) -> Option<Resolution> {
        let seen = latch::delivery_seen(meta, self.delivery_id()?)?;
        // The verdict is decided after this check: compare the rest.
        let this = Delivery {
            verdict: seen.delivery.verdict,
            ..self.delivery.clone()
        };
        if seen.delivery == this {
            let this = self.at(self.stage.clone(), seen.delivery.verdict);
            match (seen.how, seen.delivery.verdict) {
                (SeenAs::Latched, _) => return Some(this.latched()),
                (SeenAs::Resumed, Verdict::Releases) => return Some(this.resumed()),
                (SeenAs::Resumed, Verdict::Fails) => return Some(this.failed()),
                (SeenAs::Resumed, Verdict::SendsBack) => {
                    let outcome =
                        if label(meta, labels::CURRENT_STAGE) == Some(crate::stage::FAILED) {
                            Outcome::Failed
                        } else {
                            Outcome::SentBack
                        };
                    return Some(resolved(outcome, "the event decided its wait".into()));
                }
                (SeenAs::SatisfiedEarly, _) => {}
            }
        }
        Some(resolved(
            Outcome::Noop,
            format!("this delivery was handled before: {}", seen.describe()),
        ))
    }

    /// The play's stage, if the play can take an event at all.
    fn stage_taking_events(
        &self,
        pipeline: &Pipeline,
        meta: &ObjectMeta,
    ) -> std::result::Result<Stage, String> {
        let Some(current) = current_stage(meta, pipeline) else {
            return Err(format!(
                "it has no {} label; it is not a play workflow",
                labels::CURRENT_STAGE
            ));
        };
        if current.is_failed() {
            return Err(format!(
                "the play has failed; an event for {} changes nothing (rollback the play to go on)",
                self.stage
            ));
        }
        if !current.is_known() {
            return Err(format!(
                "the workflow is at {:?}, which is not a stage of {pipeline}",
                current.name()
            ));
        }
        Ok(current)
    }

    /// An early event: recorded for the `set` that enters its stage, once.
    fn latch(&self, meta: &ObjectMeta, current: &Stage, pass: Pass) -> Step<Resolution> {
        match latch::latch_slot(meta, &self.stage) {
            LatchSlot::Latched(delivery, _) => Step::Done(resolved(
                Outcome::Noop,
                format!(
                    "an early event for {} is already latched: {}",
                    self.stage,
                    delivery.describe()
                ),
            )),
            slot => Step::Write {
                patch: patch::latch_event(
                    meta,
                    &self.stage,
                    (current, pass),
                    &slot,
                    &self.delivery,
                ),
                then: self.latched(),
            },
        }
    }

    /// The play is at the event's stage: resume its wait node, if the controller has made it.
    fn resume_wait(&self, observed: &Observed, pass: Pass) -> Step<Resolution> {
        let stage = &self.stage;
        let meta = &observed.meta;
        let status = observed.status.clone().unwrap_or_default();
        match argo::suspend_node(&status, stage, pass.number) {
            Err(unreadable) => refuse(
                meta,
                format!(
                    "the workflow's node status is {}; stagectl does not guess at it: resume through the Argo Server (argo resume)",
                    unreadable.0
                ),
            ),
            Ok(SuspendNode::Active(node)) => {
                let text = format!("Resumed by stagectl: {}", self.delivery.describe());
                match node.resume_patch(stage, &text, self.delivery.at) {
                    Ok(mut patch) => {
                        patch.0.extend(patch::record_delivery(
                            meta,
                            &latch::resumed_key(stage.name()),
                            &self.delivery,
                        ));
                        Step::Write {
                            patch,
                            then: self.resumed(),
                        }
                    }
                    Err(why) => refuse(meta, why),
                }
            }
            Ok(SuspendNode::Finished { phase, .. }) => Step::Done(resolved(
                Outcome::Noop,
                format!("the wait of {stage} is already over ({phase})"),
            )),
            Ok(SuspendNode::Absent) => Step::Wait(format!(
                "is at {stage}, but the controller did not create its wait node (check that the Argo controller runs)"
            )),
        }
    }

    /// The play is at the event's stage and the event decides its wait otherwise than releasing
    /// it ([`Decided`]). Failing the play, the wait node fails as `argo node set --phase Failed`
    /// does, and the controller then fails the workflow, whose exit handler finds it failed
    /// already; sending it back, the node is resumed as `argo resume` does, and the template's
    /// next step finds its pass over. Either way the node and the play's stage change in one
    /// compare-and-swap, its history naming the delivery.
    fn decide_wait(
        &self,
        pipeline: &Pipeline,
        observed: &Observed,
        pass: Pass,
    ) -> Step<Resolution> {
        let stage = &self.stage;
        let meta = &observed.meta;
        let status = observed.status.clone().unwrap_or_default();
        let node = match argo::suspend_node(&status, stage, pass.number) {
            Ok(SuspendNode::Active(node)) => node,
            // Anything but an active node: as for a resume (over, absent, unreadable).
            _ => return self.resume_wait(observed, pass),
        };
        let decided = Decided {
            wait: stage,
            delivery: &self.delivery,
            by: &self.delivery.by,
            at: self.delivery.at,
            pass,
        };
        let (mut change, entry) = decided.change(pipeline, stage, "", meta);
        change.set_annotations.push((
            latch::resumed_key(stage.name()),
            self.delivery.to_annotation(),
        ));
        let failed = entry.to == pipeline.failed().name();
        let node_patch = if failed {
            let text = format!("Failed by stagectl: {}", self.delivery.describe());
            node.fail_patch(stage, &text, self.delivery.at)
        } else {
            let text = format!("Resumed by stagectl: {}", self.delivery.describe());
            node.resume_patch(stage, &text, self.delivery.at)
        };
        match node_patch {
            Ok(mut patch) => {
                // The node's ops first: they test the stage the change then replaces.
                patch.0.extend(change.to_patch().0);
                Step::Write {
                    patch,
                    then: if failed {
                        self.failed()
                    } else {
                        self.sent_back()
                    },
                }
            }
            Err(why) => refuse(meta, why),
        }
    }

    fn latched(&self) -> Resolution {
        let what = match self.delivery.verdict {
            Verdict::Releases => "honour the event",
            Verdict::Fails => "fail the play there instead (the event fails that wait)",
            Verdict::SendsBack => "send the play back instead, for its next pass",
        };
        resolved(
            Outcome::Latched,
            format!(
                "the play is before {}; the `set` that enters it will {what}",
                self.stage
            ),
        )
    }

    fn failed(&self) -> Resolution {
        resolved(
            Outcome::Failed,
            format!(
                "the play failed at {}: the event fails that wait",
                self.stage
            ),
        )
    }

    fn sent_back(&self) -> Resolution {
        resolved(
            Outcome::SentBack,
            format!(
                "the wait of {} is over: the event sent the play back for its next pass",
                self.stage
            ),
        )
    }

    fn resumed(&self) -> Resolution {
        resolved(
            Outcome::Resumed,
            format!("the wait of {} is over", self.stage),
        )
    }

    /// The answer of a play that can take no event: a wait it has left behind is a no-op, as
    /// for a running play past the stage; any other event can no longer take effect. Ok is the
    /// no-op, Err the refusal.
    pub fn answer_ended(&self, pipeline: &Pipeline, meta: &ObjectMeta) -> Result<Resolution> {
        match self.own_wait(pipeline, meta) {
            OwnWait::At(own, stage, verdict) => self.at(stage, verdict).answer_ended_at(&own, meta),
            OwnWait::Nowhere(Step::Done(answer)) => Ok(answer),
            OwnWait::Nowhere(Step::Fail(kind, why)) => Err(Error::new(kind, why)),
            OwnWait::Nowhere(_) => Err(Error::refused(format!(
                "workflow {}: its pipeline has no wait {}",
                name_of(meta),
                self.stage
            ))),
        }
    }

    fn answer_ended_at(&self, pipeline: &Pipeline, meta: &ObjectMeta) -> Result<Resolution> {
        let stage = &self.stage;
        let name = name_of(meta);
        if let Some(seen) = self
            .delivery_id()
            .and_then(|id| latch::delivery_seen(meta, id))
        {
            return Ok(resolved(
                Outcome::Noop,
                format!("this delivery was handled before: {}", seen.describe()),
            ));
        }
        let current = current_stage(meta, pipeline);
        let past_the_wait = current.as_ref().is_some_and(|current| {
            !current.is_failed()
                && current.is_known()
                && !pipeline.is_before(current, stage)
                && (current != stage || latch::satisfied_early(meta, stage).is_some())
        });
        let current = current.as_ref().map_or("", Stage::name);
        let state = if has_ended(meta) {
            "has ended"
        } else {
            "has failed and is ending"
        };
        if past_the_wait {
            Ok(resolved(
                Outcome::Noop,
                format!("the play {state} at {current}, past {stage}: that wait is over"),
            ))
        } else {
            Err(Error::refused(format!(
                "workflow {name}: the play {state} at stage {current:?}; an event for {stage} changes nothing"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, Meta};
    use crate::latch::{latch_key, resumed_key};
    use jiff::Timestamp;
    use serde_json::json;

    const S: &str = "waiting-ready-for-qa";

    fn p() -> Pipeline {
        Pipeline::default()
    }

    fn delivery(id: &str) -> Delivery {
        fixtures::delivery(id, "pod/stage-resume")
    }

    fn event(id: &str) -> EventRequest {
        EventRequest {
            namespace: "argo".into(),
            stage: p().stage(S),
            task_id: TaskId::parse("42").unwrap(),
            repository: Some(Repository::parse("acme/widgets").unwrap()),
            delivery: delivery(id),
            facts: None,
            pass: None,
        }
    }

    fn at(stage: &str, annotations: &[(String, String)]) -> ObjectMeta {
        Meta::named("play-42")
            .stage(stage)
            .annotations(annotations)
            .build()
    }

    fn observed(meta: ObjectMeta, nodes: serde_json::Value) -> Observed {
        Observed {
            meta,
            status: Some(json!({ "nodes": nodes })),
        }
    }

    fn active() -> serde_json::Value {
        json!({"n": {"type": "Suspend", "phase": "Running", "inputs": {"parameters": [{"name": "stage", "value": S}]}}})
    }

    fn noop(step: Step<Resolution>) -> String {
        match step {
            Step::Done(Resolution {
                outcome: Outcome::Noop,
                detail,
            }) => detail,
            other => panic!("expected a no-op, got {other:?}"),
        }
    }

    #[test]
    fn an_early_event_is_latched_once() {
        let empty = [(latch_key(S), String::new())];
        let step = event("d").plan(&p(), &observed(at("waiting-pr-created", &empty), json!({})));
        let Step::Write { patch, then } = step else {
            panic!("expected a latch, got {step:?}")
        };
        assert_eq!(then.outcome, Outcome::Latched);
        let mut workflow = json!({"metadata": {"labels": {"current-stage": "waiting-pr-created"}, "annotations": {latch_key(S): ""}}});
        json_patch::patch(&mut workflow, &patch).unwrap();
        let latched = workflow["metadata"]["annotations"][latch_key(S)]
            .as_str()
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Delivery>(latched).unwrap(),
            delivery("d")
        );

        let other = event("d2").plan(
            &p(),
            &observed(
                at("pending", &[(latch_key(S), latched.to_string())]),
                json!({}),
            ),
        );
        assert!(noop(other).contains("already latched"));
    }

    #[test]
    fn an_event_on_time_resumes_or_waits_for_the_node() {
        assert!(matches!(
            event("d").plan(&p(), &observed(at(S, &[]), active())),
            Step::Write {
                then: Resolution {
                    outcome: Outcome::Resumed,
                    ..
                },
                ..
            }
        ));
        assert!(matches!(
            event("d").plan(&p(), &observed(at(S, &[]), json!({}))),
            Step::Wait(what) if what.contains("did not create its wait node")
        ));
        let finished = json!({"n": {"type": "Suspend", "phase": "Succeeded", "inputs": {"parameters": [{"name": "stage", "value": S}]}}});
        assert!(
            noop(event("d").plan(&p(), &observed(at(S, &[]), finished))).contains("already over")
        );
    }

    #[test]
    fn late_duplicate_failed_and_unreadable_cases_never_act() {
        assert!(
            noop(event("d").plan(&p(), &observed(at("completed", &[]), active()))).contains("over")
        );
        assert!(matches!(
            event("d").plan(&p(), &observed(at("failed", &[]), active())),
            Step::Refuse(_)
        ));
        let compressed = Observed {
            meta: at(S, &[]),
            status: Some(json!({"compressedNodes": "H4sI"})),
        };
        assert!(
            matches!(event("d").plan(&p(), &compressed), Step::Refuse(w) if w.contains("Argo Server"))
        );
        let mut other = delivery("d");
        other.at = Timestamp::from_second(1_780_000_000).unwrap();
        let meta = at(S, &[(resumed_key(S), other.to_annotation())]);
        assert!(noop(event("d").plan(&p(), &observed(meta, active()))).contains("handled before"));
    }

    /// A write whose answer was lost (a timeout) may have landed; reading it back, stagectl
    /// recognises its own record and reports what it did, not a no-op.
    #[test]
    fn a_write_of_this_very_request_that_landed_is_reported_as_done() {
        let ours = delivery("d").to_annotation();
        let resumed = at(S, &[(resumed_key(S), ours.clone())]);
        assert!(matches!(
            event("d").plan(&p(), &observed(resumed, json!({}))),
            Step::Done(Resolution {
                outcome: Outcome::Resumed,
                ..
            })
        ));
        let latched = at("pending", &[(latch_key(S), ours)]);
        assert!(matches!(
            event("d").plan(&p(), &observed(latched, json!({}))),
            Step::Done(Resolution {
                outcome: Outcome::Latched,
                ..
            })
        ));
    }

    fn play(name: &str, stage: &str, created: i64, extra: &[(&str, &str)]) -> ObjectMeta {
        Meta::named(name)
            .stage(stage)
            .created(created)
            .labels(extra)
            .build()
    }

    const RUNNING: (&str, &str) = ("workflows.argoproj.io/phase", "Running");
    const ENDED: (&str, &str) = ("workflows.argoproj.io/completed", "true");

    #[test]
    fn a_failed_play_never_takes_an_event_and_a_newer_play_of_the_task_does() {
        let failed = play("play-old", "failed", 1, &[RUNNING]);
        let newer = play("play-new", "pending", 2, &[RUNNING]);
        assert_eq!(
            event("d")
                .choose_play(&p(), &[failed.clone(), newer])
                .unwrap(),
            Chosen::Active(&play("play-new", "pending", 2, &[RUNNING]))
        );
        // Alone, the failed play answers, and refuses.
        let chosen = event("d")
            .choose_play(&p(), std::slice::from_ref(&failed))
            .unwrap();
        assert_eq!(chosen, Chosen::Ended(&failed));
        let refusal = event("d").answer_ended(&p(), &failed).unwrap_err();
        assert!(refusal.message().contains("has failed"), "{refusal}");
    }

    #[test]
    fn events_go_to_the_play_the_mutex_lets_run_and_redeliveries_to_the_play_that_saw_them() {
        let first = play("play-1", "pending", 1, &[RUNNING]);
        let queued = play(
            "play-2",
            "pending",
            2,
            &[("workflows.argoproj.io/phase", "Pending")],
        );
        assert_eq!(
            event("d")
                .choose_play(&p(), &[first.clone(), queued.clone()])
                .unwrap(),
            Chosen::Active(&first)
        );
        let mut saw = play("play-1", "completed", 1, &[ENDED]);
        saw.annotations = Some([(resumed_key(S), delivery("d").to_annotation())].into());
        let running = play("play-2", "pending", 2, &[RUNNING]);
        assert!(matches!(
            event("d").choose_play(&p(), &[saw.clone(), running.clone()]).unwrap(),
            Chosen::Ended(meta) if meta.name.as_deref() == Some("play-1")
        ));
        assert_eq!(
            event("new")
                .choose_play(&p(), &[saw, running.clone()])
                .unwrap(),
            Chosen::Active(&running)
        );
    }

    #[test]
    fn no_play_or_several_running_plays_are_refused_by_class() {
        use crate::error::Kind;
        assert_eq!(
            event("d")
                .choose_play::<ObjectMeta>(&p(), &[])
                .unwrap_err()
                .kind,
            Kind::NotFound
        );
        let several = [
            play("a", "pending", 1, &[RUNNING]),
            play("b", "pending", 2, &[RUNNING]),
        ];
        let err = event("d").choose_play(&p(), &several).unwrap_err();
        assert_eq!(err.kind, Kind::Refused);
        assert!(err.message().contains("a, b"));
    }

    #[test]
    fn an_event_for_an_ended_play_is_a_noop_only_past_its_wait() {
        let ended = |stage| event("d").answer_ended(&p(), &play("x", stage, 1, &[ENDED]));
        assert!(matches!(ended("completed"), Ok(r) if r.detail.contains("over")));
        assert!(ended("waiting-pr-approved").is_ok());
        assert!(
            matches!(ended("failed"), Err(e) if e.message().contains("has ended at stage \"failed\""))
        );
        // Ended before the wait, or in it (stopped, terminated): the event can never apply.
        assert!(ended("pending").is_err());
        assert!(ended(S).is_err());
        assert!(ended("no-such-stage").is_err());
    }

    /// A failed check at a gate whose definition names it (`failedBy`): at the wait, one patch
    /// moves the play to `failed` (recording where, and the delivery) and fails the wait node as
    /// `argo node set --phase Failed` does; a second try of it changes nothing. Before the wait,
    /// the event is latched as one that fails it.
    #[test]
    fn an_event_that_fails_a_wait_fails_the_play_there_or_is_latched_as_failing() {
        let gated = fixtures::gated();
        let carried = (
            crate::pipeline::ANNOTATION.to_string(),
            crate::pipeline::to_json(&gated).unwrap(),
        );
        let failure = EventRequest {
            stage: gated.stage("waiting-ci"),
            facts: Some(EventFacts {
                conclusion: Some("failure".into()),
                ..EventFacts::new("check_suite", "completed")
            }),
            ..event("d-red")
        };
        let ci = json!({"n": {"type": "Suspend", "phase": "Running",
                              "inputs": {"parameters": [{"name": "stage", "value": "waiting-ci"}]}}});
        let meta = at("waiting-ci", std::slice::from_ref(&carried));
        let Step::Write { patch, then } = failure.plan(&p(), &observed(meta.clone(), ci.clone()))
        else {
            panic!("expected the play to fail")
        };
        assert_eq!(then.outcome, Outcome::Failed);
        let mut workflow = json!({"metadata": serde_json::to_value(&meta).unwrap(),
                                  "status": {"nodes": ci}});
        json_patch::patch(&mut workflow, &patch).unwrap();
        let labels = &workflow["metadata"]["labels"];
        let annotations = &workflow["metadata"]["annotations"];
        assert_eq!(labels["current-stage"], "failed");
        assert_eq!(annotations["stagectl.dev/failed-at"], "waiting-ci");
        let recorded: Delivery =
            serde_json::from_str(annotations[resumed_key("waiting-ci")].as_str().unwrap()).unwrap();
        assert_eq!(recorded.verdict, Verdict::Fails);
        let node = &workflow["status"]["nodes"]["n"];
        assert_eq!(node["phase"], "Failed");
        assert!(
            node["message"].as_str().unwrap().contains("d-red"),
            "{node}"
        );
        let history = crate::record::history(
            &serde_json::from_value::<ObjectMeta>(workflow["metadata"].clone()).unwrap(),
        );
        let entry = history.values().next_back().unwrap();
        assert_eq!(
            (entry.from.as_str(), entry.to.as_str()),
            ("waiting-ci", "failed")
        );
        assert!(
            entry
                .reason
                .as_deref()
                .unwrap()
                .contains("failed the wait of waiting-ci")
        );
        // The same patch again fails its tests; read again, the delivery is known.
        assert!(json_patch::patch(&mut workflow.clone(), &patch).is_err());
        let after = serde_json::from_value::<ObjectMeta>(workflow["metadata"].clone()).unwrap();
        assert!(matches!(
            failure.plan(&p(), &observed(after, workflow["status"]["nodes"].clone())),
            Step::Done(Resolution {
                outcome: Outcome::Failed,
                ..
            })
        ));

        // Early: latched, as failing.
        let empty = [carried, (latch_key("waiting-ci"), String::new())];
        let step = failure.plan(&p(), &observed(at("waiting-pr-created", &empty), json!({})));
        let Step::Write { patch, then } = step else {
            panic!("expected a latch, got {step:?}")
        };
        assert_eq!(then.outcome, Outcome::Latched);
        assert!(
            then.detail.contains("fail the play there"),
            "{}",
            then.detail
        );
        let mut workflow = json!({"metadata": {"labels": {"current-stage": "waiting-pr-created"},
                                               "annotations": {latch_key("waiting-ci"): ""}}});
        json_patch::patch(&mut workflow, &patch).unwrap();
        let latched = workflow["metadata"]["annotations"][latch_key("waiting-ci")]
            .as_str()
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Delivery>(latched).unwrap().verdict,
            Verdict::Fails
        );
    }

    /// A play carrying a definition of its own (here one with gates) is decided by it,
    /// whatever definition the Sensor was rendered from: the stage named when it is one of the
    /// play's waits that the facts release, else the wait the facts release, else nothing.
    #[test]
    fn a_play_that_carries_its_definition_takes_events_by_it() {
        let gated = crate::fixtures::gated();
        let carried = [(
            crate::pipeline::ANNOTATION.to_string(),
            crate::pipeline::to_json(&gated).unwrap(),
        )];
        let node = |stage: &str| {
            json!({"n": {"type": "Suspend", "phase": "Running",
                         "inputs": {"parameters": [{"name": "stage", "value": stage}]}}})
        };
        let suite = |conclusion: &str| EventFacts {
            conclusion: Some(conclusion.into()),
            ..EventFacts::new("check_suite", "completed")
        };
        // A Sensor of another definition named a stage the play has not; the facts say which.
        let event = EventRequest {
            stage: p().stage("waiting-checks"),
            facts: Some(suite("success")),
            ..event("d")
        };
        let play = observed(at("waiting-ci", &carried), node("waiting-ci"));
        assert!(matches!(event.plan(&p(), &play), Step::Write { .. }));
        let cancelled = EventRequest {
            facts: Some(suite("cancelled")),
            ..event.clone()
        };
        assert!(noop(cancelled.plan(&p(), &play)).contains("decides no wait of pipeline gated"));
        // By hand, without facts, a stage the play's pipeline does not wait at is refused.
        let by_hand = EventRequest {
            facts: None,
            ..event.clone()
        };
        assert!(
            matches!(by_hand.plan(&p(), &play), Step::Refuse(why) if why.contains("has no wait waiting-checks"))
        );
        // Before its wait, the event is latched for the stage of the play's own pipeline.
        let early = observed(at("pending", &carried), json!({}));
        let Step::Write { patch, .. } = event.plan(&p(), &early) else {
            panic!("not latched")
        };
        assert!(
            serde_json::to_string(&patch)
                .unwrap()
                .contains("latch-waiting-ci"),
            "{patch:?}"
        );
    }
}
