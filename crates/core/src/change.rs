//! `set` and `rollback` as plans: from what the caller asked and, when needed, what the workflow
//! looks like, to the one JSON Patch that makes the change a compare-and-swap.
//!
//! The hot path needs no read: a step forward knows the stage it starts from, so its patch tests
//! that stage (and the entered stage's empty latch) and writes the new one, `updated-at` and the
//! history entry at once. Only when the server refuses that patch is the workflow read, to tell a
//! repeat (no-op) from a refusal, or to plan again from what was read.
//!
//! Entering a waiting stage tests that stage's latch (see `latch`): empty, the change goes
//! through as above; holding an early event, the patch planned from the read clears the latch and
//! records that the wait was satisfied early, in the same compare-and-swap.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use std::sync::Arc;

use crate::Step;
use crate::event::Verdict;
use crate::labels::{self, Repository, TaskId, WorkflowName};
use crate::latch::{self, Delivery, LatchSlot};
use crate::pass::{self, Pass};
use crate::patch::{self, StageChange};
use crate::pipeline;
use crate::record::{self, ChangeKind, HistoryEntry, StageRecord};
use crate::stage::{Moves, Pipeline, Stage, Transition};

/// A wait decided otherwise than released: failed there, or sent back for another pass.
mod decided;
/// A workflow Argo left without the play's labels, given them by its first step.
mod initialise;
/// What a change did: its outcome, and the Event that tells of it.
mod outcome;

pub use outcome::{ChangeOutcome, ChangeResult, Planned, history_trim};

pub(crate) use decided::Decided;

/// A latched event that decides the wait being entered otherwise than releasing it.
struct EarlyDecision<'a> {
    gate: &'a Stage,
    delivery: &'a Delivery,
    latched: &'a String,
}

/// Where the change goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    /// One step forward, or into `failed`; with `force`, anywhere.
    Set { target: Stage, moves: Moves },
    /// Back to a named earlier stage, or (without one) to where the workflow came from.
    Rollback { to: Option<Stage> },
}

/// A change as asked for, validated; nothing has been read yet.
#[derive(Debug, Clone)]
pub struct ChangeRequest {
    pub workflow: WorkflowName,
    pub namespace: String,
    /// Refuse unless the workflow is the play of this task (written when it has no task-id).
    pub task_id: Option<TaskId>,
    /// Refuse unless the workflow is of this repository (written when it has none).
    pub repository: Option<Repository>,
    pub goal: Goal,
    pub reason: Option<String>,
    /// Who makes the change, for the history.
    pub actor: String,
    /// The definition to record on a play at its first stage that carries none (the play's first
    /// step): from then on, the play is decided by it, whatever definition stagectl is given.
    pub carry: Option<String>,
    /// The pass the caller acts in (a step of the play template knows its pass): refused in an
    /// earlier pass, and answered [`ChangeResult::PassOver`] once the play has been sent back
    /// past it. None: whatever pass the play is in.
    pub pass: Option<u32>,
}

impl ChangeRequest {
    fn kind(&self) -> ChangeKind {
        match self.goal {
            Goal::Set {
                moves: Moves::Any, ..
            } => ChangeKind::Forced,
            Goal::Set { .. } => ChangeKind::Set,
            Goal::Rollback { .. } => ChangeKind::Rollback,
        }
    }

    /// The pass a change planned without a read assumes, and tests: the caller's, else the
    /// first (a play in a later pass, or without the annotation, fails the test and is read).
    fn assumed_pass(&self) -> Pass {
        Pass {
            number: self.pass.unwrap_or(1),
            began: None,
            annotated: true,
        }
    }

    /// Where the change goes, for messages: the target, or what a rollback without one means.
    pub fn target_name(&self) -> &str {
        match &self.goal {
            Goal::Set { target, .. } | Goal::Rollback { to: Some(target) } => target.name(),
            Goal::Rollback { to: None } => "the stage it came from",
        }
    }

    /// The plan made without reading the workflow, when there is one: a normal step forward
    /// starts from the stage before its target. Moving to `failed`, forcing and rolling back
    /// depend on where the workflow is, and read first.
    pub fn plan_unread(&self, pipeline: &Pipeline, now: Timestamp) -> Option<Step<Planned>> {
        let Goal::Set {
            target,
            moves: Moves::Legal,
        } = &self.goal
        else {
            return None;
        };
        let from = pipeline.predecessor(target)?;
        Some(self.write(pipeline, &from, target, None, self.assumed_pass(), now))
    }

    /// The plan for the workflow as read. `attempted` holds the history entries of the patches
    /// this request has sent: one of them on the workflow means that patch landed although its
    /// answer was lost (a 504, a dropped connection) and its retry was refused because the stage
    /// had moved, by that very patch. That is this request's change, applied, not a no-op.
    pub fn plan(
        &self,
        pipeline: &Pipeline,
        observed: &ObjectMeta,
        now: Timestamp,
        attempted: &[HistoryEntry],
    ) -> Step<Planned> {
        let history = record::history(observed);
        if let Some(landed) = attempted
            .iter()
            .find(|entry| history.get(&entry.annotation_key()) == Some(*entry))
        {
            return Step::Done(Planned {
                outcome: self.applied(pipeline, landed),
                entry: Some(landed.clone()),
            });
        }
        // The play's own pipeline decides, and the stages asked for are read against it.
        let own = match pipeline::of_play(observed, pipeline) {
            Ok(own) => own,
            Err(err) => return Step::Fail(err.kind, err.message().to_string()),
        };
        let pipeline: &Pipeline = &own;
        let goal = match self.goal_in(pipeline, observed) {
            Ok(goal) => goal,
            Err(err) => return Step::Fail(err.kind, err.message().to_string()),
        };
        let record = StageRecord::from_meta(observed, Arc::new(pipeline.clone()));
        if let Some(refusal) = self.identity_refusal(&record) {
            return Step::Refuse(refusal);
        }
        let Some(current) = record.stage.clone() else {
            return self.initialise(pipeline, observed, &record, now);
        };
        let pass = match Pass::of(observed) {
            Ok(pass) => pass,
            Err(why) => return Step::Refuse(format!("workflow {}: {why}", self.workflow)),
        };
        match self.pass {
            Some(asked) if asked < pass.number => {
                return Step::Done(self.pass_over(&current, &pass));
            }
            Some(asked) if asked > pass.number => {
                return Step::Refuse(format!(
                    "workflow {}: the play is in pass {}, not {asked}; check --pass",
                    self.workflow, pass.number
                ));
            }
            _ => {}
        }
        let transition = match &goal {
            Goal::Set { target, moves } => pipeline.plan_set(&current, target, *moves),
            Goal::Rollback { to } => {
                pipeline.plan_rollback(&current, record.failed_at.as_ref(), to.as_ref())
            }
        };
        match transition {
            Transition::Noop if current == pipeline.first() && self.carries_to(observed) => {
                self.record_pipeline(pipeline, observed, &current)
            }
            Transition::Noop => {
                let skip_wait = pipeline
                    .is_waiting(&current)
                    .then(|| latch::satisfied_early(observed, &current).is_some());
                let mut planned = self.unchanged(&current, skip_wait, pass.number);
                if current.is_failed() {
                    planned.outcome.failure = record
                        .history
                        .iter()
                        .rev()
                        .find(|entry| entry.to == current.name())
                        .map(record::Failure::of)
                        .or(Some(record::Failure::Step));
                }
                Step::Done(planned)
            }
            Transition::Refuse(why) => Step::Refuse(format!("workflow {}: {why}", self.workflow)),
            Transition::Apply { from, to, .. } => {
                self.write(pipeline, &from, &to, Some(observed), pass, now)
            }
        }
    }

    /// The goal with its stages read against the play's own pipeline: a stage named on the
    /// command line that the play's pipeline does not know is bad input, as it is when the
    /// caller's does not know it.
    fn goal_in(&self, pipeline: &Pipeline, observed: &ObjectMeta) -> crate::Result<Goal> {
        let carried = observed
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(pipeline::ANNOTATION));
        let read = |stage: &Stage| {
            pipeline.parse_stage(stage.name()).map_err(|err| {
                if carried {
                    crate::Error::usage(format!(
                        "{} (of pipeline {}, which workflow {} carries)",
                        err.message(),
                        pipeline.name(),
                        self.workflow
                    ))
                } else {
                    err
                }
            })
        };
        Ok(match &self.goal {
            Goal::Set { target, moves } => Goal::Set {
                target: read(target)?,
                moves: *moves,
            },
            Goal::Rollback { to } => Goal::Rollback {
                to: to.as_ref().map(read).transpose()?,
            },
        })
    }

    /// Whether this change records its definition on the workflow: it has one to record, and
    /// the workflow carries none.
    fn carries_to(&self, observed: &ObjectMeta) -> bool {
        self.carry.is_some()
            && observed
                .annotations
                .as_ref()
                .is_none_or(|a| !a.contains_key(pipeline::ANNOTATION))
    }

    /// The annotations that record the definition on a play: the definition, the stage order the
    /// API server's policy reads, and the empty latches of its waits that are missing.
    fn carried_annotations(
        &self,
        pipeline: &Pipeline,
        observed: &ObjectMeta,
    ) -> Vec<(String, String)> {
        let Some(definition) = &self.carry else {
            return Vec::new();
        };
        let mut annotations = vec![
            (pipeline::ANNOTATION.to_string(), definition.clone()),
            (
                pipeline::STAGES_ANNOTATION.to_string(),
                pipeline.stages().collect::<Vec<_>>().join(","),
            ),
            (
                pass::BACK_EDGES_ANNOTATION.to_string(),
                pass::back_edges_annotation(pipeline),
            ),
            (
                pass::PASSES_ANNOTATION.to_string(),
                pipeline.passes().to_string(),
            ),
        ];
        annotations.extend(latch::empty_latches(pipeline));
        annotations.push((pass::PASS_ANNOTATION.to_string(), "1".to_string()));
        let present = observed.annotations.as_ref();
        annotations.retain(|(key, _)| present.is_none_or(|seen| !seen.contains_key(key)));
        annotations
    }

    /// A play at its first stage that carries no definition: the first step records the one it
    /// was given, under a test of the whole object as read.
    fn record_pipeline(
        &self,
        pipeline: &Pipeline,
        observed: &ObjectMeta,
        current: &Stage,
    ) -> Step<Planned> {
        Step::Write {
            patch: patch::add_annotations_at(
                observed,
                current.name(),
                &self.carried_annotations(pipeline, observed),
            ),
            then: self.unchanged(current, None, 1),
        }
    }

    /// A workflow of another task or repository is never changed on this one's behalf.
    fn identity_refusal(&self, record: &StageRecord) -> Option<String> {
        if let (Some(wanted), Some(actual)) = (&self.task_id, &record.task_id)
            && wanted.as_str() != actual
        {
            return Some(format!(
                "workflow {} is the play of task {actual}, not {wanted}; check --task-id and --workflow",
                self.workflow
            ));
        }
        let wanted = self.repository.as_ref()?;
        let actual = record.repository.as_deref()?.to_ascii_lowercase();
        (actual != wanted.full_name().to_ascii_lowercase()).then(|| {
            format!(
                "workflow {} belongs to repository {actual}, not {}; check --repository and --workflow",
                self.workflow,
                wanted.full_name()
            )
        })
    }

    fn entry(&self, from: &Stage, to: &Stage, pass: u32, now: Timestamp) -> HistoryEntry {
        HistoryEntry {
            at: now,
            from: from.name().to_string(),
            to: to.name().to_string(),
            kind: self.kind(),
            by: self.actor.clone(),
            reason: self.reason.clone(),
            wait_satisfied_by: None,
            pass,
        }
    }

    /// The patch for `from` → `to`, built from the workflow as read or, unread, from what the
    /// request alone tells.
    fn write(
        &self,
        pipeline: &Pipeline,
        from: &Stage,
        to: &Stage,
        observed: Option<&ObjectMeta>,
        pass: Pass,
        now: Timestamp,
    ) -> Step<Planned> {
        // Entering a waiting stage: its latch, as read (`None` inside when unread).
        let entered_latch = (self.kind() != ChangeKind::Rollback && pipeline.is_waiting(to))
            .then(|| observed.map(|meta| latch::latch_slot(meta, to)));
        if let Some(Some(LatchSlot::Latched(delivery, text))) = &entered_latch
            && delivery.verdict != Verdict::Releases
            && let Some(observed) = observed
        {
            let early = EarlyDecision {
                gate: to,
                delivery,
                latched: text,
            };
            return self.decided_at_gate(pipeline, from, early, observed, pass, now);
        }
        let mut entry = self.entry(from, to, pass.number, now);
        if let Some(Some(LatchSlot::Latched(delivery, _))) = &entered_latch {
            entry.wait_satisfied_by = Some(delivery.clone());
        }
        let mut change = StageChange::new(from.name(), to.name(), &entry);
        change.test_pass(pass);
        let mut needs_resource_version =
            self.write_identity(&mut change, observed.and_then(|meta| meta.labels.as_ref()));
        if let Some(slot) = entered_latch {
            needs_resource_version |= test_entered_latch(&mut change, to, slot);
        }
        if let Some(observed) = observed {
            clear_latches_left_behind(&mut change, pipeline, from, to, observed);
            change.create_annotations_map = observed.annotations.is_none();
            if change.create_annotations_map || needs_resource_version {
                change.resource_version = observed.resource_version.clone();
            }
        }
        self.written(pipeline, &change, entry)
    }

    /// The write of `change`, which records `entry`.
    fn written(
        &self,
        pipeline: &Pipeline,
        change: &StageChange,
        entry: HistoryEntry,
    ) -> Step<Planned> {
        Step::Write {
            patch: change.to_patch(),
            then: Planned {
                outcome: self.applied(pipeline, &entry),
                entry: Some(entry),
            },
        }
    }

    /// Entering `gate`, whose latch holds an early event that decides its wait otherwise than
    /// releasing it: the play goes where the event sends it instead (`failed` for a failed
    /// check; back to an earlier stage for a change request, or `failed` at the pass limit), in
    /// the same compare-and-swap, the latch consumed and the delivery in the history entry.
    /// The command then answers with the stage the play went to.
    fn decided_at_gate(
        &self,
        pipeline: &Pipeline,
        from: &Stage,
        early: EarlyDecision<'_>,
        observed: &ObjectMeta,
        pass: Pass,
        now: Timestamp,
    ) -> Step<Planned> {
        let addendum = self
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let decided = Decided {
            wait: early.gate,
            delivery: early.delivery,
            by: &self.actor,
            at: now,
            pass,
        };
        let when = format!(" before the play reached it{addendum}");
        let (mut change, entry) = decided.change(pipeline, from, &when, observed);
        let slot = LatchSlot::Latched(early.delivery.clone(), early.latched.clone());
        test_entered_latch(&mut change, early.gate, Some(slot));
        if self.write_identity(&mut change, observed.labels.as_ref()) {
            change.resource_version = observed.resource_version.clone();
        }
        self.written(pipeline, &change, entry)
    }

    /// The task and repository asked for: tested where the workflow has them (or is unread),
    /// written where it is known to lack them. True when something is written, which only a
    /// test of the whole object as read makes safe.
    fn write_identity(
        &self,
        change: &mut StageChange,
        labels_seen: Option<&BTreeMap<String, String>>,
    ) -> bool {
        let mut needs_resource_version = false;
        let mut identity = Vec::new();
        if let Some(task_id) = &self.task_id {
            identity.push((labels::TASK_ID.to_string(), task_id.to_string()));
        }
        if let Some(repository) = &self.repository {
            identity.push((labels::REPOSITORY.to_string(), repository.label_value()));
        }
        for (key, value) in identity {
            match labels_seen {
                Some(seen) if !seen.contains_key(&key) => {
                    needs_resource_version = true;
                    if key == labels::REPOSITORY
                        && let Some(repository) = &self.repository
                    {
                        change.set_annotations.push((
                            labels::REPOSITORY_ANNOTATION.to_string(),
                            repository.full_name().to_string(),
                        ));
                    }
                    change.set_labels.push((key, value));
                }
                _ => change.expect_labels.push((key, value)),
            }
        }
        needs_resource_version
    }
}

/// The entered stage's latch (`None` when unread) made part of the compare-and-swap. True when
/// there is no latch annotation to test, so that only the whole object as read is safe.
fn test_entered_latch(change: &mut StageChange, to: &Stage, slot: Option<LatchSlot>) -> bool {
    let key = latch::latch_key(to.name());
    match slot {
        // Unread: assume the empty latch; a latch written meanwhile fails the test.
        None | Some(LatchSlot::Empty) => change.expect_annotations.push((key, String::new())),
        // Honoured: cleared in the same patch; the history entry names the delivery.
        Some(LatchSlot::Latched(_, text)) => {
            change.expect_annotations.push((key.clone(), text));
            change.set_annotations.push((key, String::new()));
        }
        Some(LatchSlot::Missing) => return true,
    }
    false
}

/// Going back: early events latched for the stages left behind were honoured (or are stale) and
/// must not release the waits again on the way forward.
pub(crate) fn clear_latches_left_behind(
    change: &mut StageChange,
    pipeline: &Pipeline,
    from: &Stage,
    to: &Stage,
    observed: &ObjectMeta,
) {
    if to.is_failed() || !(pipeline.is_before(to, from) || from.is_failed()) {
        return;
    }
    for stage in pipeline
        .waiting_stages()
        .filter(|s| pipeline.is_before(to, s))
    {
        if let LatchSlot::Latched(_, text) = latch::latch_slot(observed, &stage) {
            let key = latch::latch_key(stage.name());
            change.expect_annotations.push((key.clone(), text));
            change.set_annotations.push((key, String::new()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::at;
    use serde_json::json;

    fn request(actor: &str) -> ChangeRequest {
        ChangeRequest {
            workflow: WorkflowName::parse("play-42").unwrap(),
            namespace: "plays".into(),
            task_id: None,
            repository: None,
            goal: Goal::Set {
                target: Pipeline::default().stage("waiting-pr-created"),
                moves: Moves::Legal,
            },
            reason: None,
            actor: actor.into(),
            carry: None,
            pass: None,
        }
    }

    /// The workflow after `step`'s patch, applied as the server would.
    fn landed(step: &Step<Planned>) -> ObjectMeta {
        let Step::Write { patch, .. } = step else {
            panic!("not a write: {step:?}")
        };
        let mut workflow = json!({"metadata": {
            "name": "play-42",
            "labels": {"current-stage": "pending"},
            "annotations": {"stagectl.dev/latch-waiting-pr-created": "", "stagectl.dev/pass": "1"},
        }});
        json_patch::patch(&mut workflow, patch).unwrap();
        serde_json::from_value(workflow["metadata"].clone()).unwrap()
    }

    fn attempted(step: &Step<Planned>) -> Vec<HistoryEntry> {
        match step {
            Step::Write { then, .. } => then.entry.clone().into_iter().collect(),
            _ => vec![],
        }
    }

    #[test]
    fn a_change_whose_answer_was_lost_is_recognised_on_the_next_read_as_applied() {
        let pipeline = Pipeline::default();
        let rex = request("pod/rex");
        let sent = rex.plan_unread(&pipeline, at(100)).unwrap();
        let after = landed(&sent);

        let again = rex.plan(&pipeline, &after, at(101), &attempted(&sent));
        let Step::Done(planned) = again else {
            panic!("{again:?}")
        };
        assert_eq!(planned.outcome.outcome, ChangeResult::Applied);
        assert_eq!(planned.outcome.from.as_deref(), Some("pending"));
        assert_eq!(planned.outcome.to, "waiting-pr-created");
        assert_eq!(planned.outcome.skip_wait, Some(false));
        assert_eq!(planned.entry, attempted(&sent).pop());
    }

    #[test]
    fn the_same_change_made_by_another_writer_is_a_noop() {
        let pipeline = Pipeline::default();
        let other = request("pod/other");
        let after = landed(&other.plan_unread(&pipeline, at(100)).unwrap());

        let rex = request("pod/rex");
        let sent = rex.plan_unread(&pipeline, at(100)).unwrap();
        for attempts in [vec![], attempted(&sent)] {
            let again = rex.plan(&pipeline, &after, at(101), &attempts);
            let Step::Done(planned) = again else {
                panic!("{again:?}")
            };
            assert_eq!(planned.outcome.outcome, ChangeResult::Noop);
            assert_eq!(planned.entry, None);
        }
    }

    fn start(task_id: Option<&str>) -> ChangeRequest {
        ChangeRequest {
            task_id: task_id.map(|id| TaskId::parse(id).unwrap()),
            repository: Some(Repository::parse("Acme/Widgets").unwrap()),
            goal: Goal::Set {
                target: Pipeline::default().first(),
                moves: Moves::Legal,
            },
            ..request("pod/start")
        }
    }

    /// A workflow as Argo's controller leaves it when it postponed it before admitting it: its
    /// own labels, none of the template's.
    fn without_play_metadata() -> ObjectMeta {
        serde_json::from_value(json!({
            "name": "play-42",
            "resourceVersion": "7",
            "labels": {"workflows.argoproj.io/phase": "Running"},
        }))
        .unwrap()
    }

    #[test]
    fn the_first_step_gives_a_workflow_argo_left_bare_the_plays_labels_under_a_version_test() {
        let step =
            start(Some("42")).plan(&Pipeline::default(), &without_play_metadata(), at(100), &[]);
        let Step::Write { patch, then } = step else {
            panic!("{step:?}")
        };
        assert_eq!(then.outcome.outcome, ChangeResult::Applied);
        assert_eq!(then.outcome.to, "pending");
        let ops = serde_json::to_value(&patch).unwrap();
        assert_eq!(
            ops[0],
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "7"})
        );
        let mut workflow = json!({"metadata": without_play_metadata()});
        json_patch::patch(&mut workflow, &patch).unwrap();
        let meta: ObjectMeta = serde_json::from_value(workflow["metadata"].clone()).unwrap();
        let labels = meta.labels.unwrap();
        assert_eq!(labels["workflow-type"], "play-orchestration");
        assert_eq!(labels["current-stage"], "pending");
        assert_eq!(labels["task-id"], "42");
        assert_eq!(labels["repository"], "acme.widgets");
        assert_eq!(labels["workflows.argoproj.io/phase"], "Running");
        let annotations = meta.annotations.unwrap();
        assert_eq!(annotations["stagectl.dev/repository"], "Acme/Widgets");
        for stage in [
            "waiting-pr-created",
            "waiting-ready-for-qa",
            "waiting-pr-approved",
        ] {
            assert_eq!(annotations[&format!("stagectl.dev/latch-{stage}")], "");
        }

        // Written, the next plan is a no-op.
        let again = start(Some("42")).plan(
            &Pipeline::default(),
            &serde_json::from_value(workflow["metadata"].clone()).unwrap(),
            at(101),
            &[],
        );
        assert!(matches!(again, Step::Done(p) if p.outcome.outcome == ChangeResult::Noop));
    }

    #[test]
    fn a_workflow_without_a_stage_is_no_play_unless_the_first_step_names_its_task() {
        let pipeline = Pipeline::default();
        let refused = |step: Step<Planned>| match step {
            Step::Refuse(why) => why,
            other => panic!("{other:?}"),
        };
        let why = refused(start(None).plan(&pipeline, &without_play_metadata(), at(1), &[]));
        assert!(why.contains("stagectl set pending --task-id"), "{why}");
        let later =
            refused(request("pod/rex").plan(&pipeline, &without_play_metadata(), at(1), &[]));
        assert!(later.contains("not a play workflow"), "{later}");

        // A play whose stage label was removed keeps its history: not started again.
        let mut removed = without_play_metadata();
        let entry = match request("pod/rex").plan_unread(&pipeline, at(1)).unwrap() {
            Step::Write { then, .. } => then.entry.unwrap(),
            other => panic!("{other:?}"),
        };
        removed.annotations = Some(
            [(
                entry.annotation_key(),
                serde_json::to_string(&entry).unwrap(),
            )]
            .into(),
        );
        let why = refused(start(Some("42")).plan(&pipeline, &removed, at(2), &[]));
        assert!(why.contains("removed"), "{why}");
    }

    /// The policy lets a failed play back only to where it failed, read from one annotation:
    /// every move into `failed` writes it, and rollback goes by it.
    #[test]
    fn failing_records_the_stage_failed_at_and_rollback_returns_there() {
        let pipeline = Pipeline::default();
        let mut fail = request("pod/exit-handler");
        fail.goal = Goal::Set {
            target: pipeline.failed(),
            moves: Moves::Legal,
        };
        let pending: ObjectMeta = serde_json::from_value(json!({
            "name": "play-42",
            "labels": {"current-stage": "pending"},
            "annotations": {},
        }))
        .unwrap();
        assert!(
            fail.plan_unread(&pipeline, at(100)).is_none(),
            "failing reads first"
        );
        let at_pending = landed(&fail.plan(&pipeline, &pending, at(100), &[]));
        let annotations = at_pending.annotations.clone().unwrap();
        assert_eq!(annotations[record::FAILED_AT_ANNOTATION], "pending");

        let mut back = request("someone@host");
        back.goal = Goal::Rollback { to: None };
        let mut failed = at_pending.clone();
        failed.labels.as_mut().unwrap().insert(
            labels::CURRENT_STAGE.into(),
            pipeline.failed().name().into(),
        );
        let Step::Write { then, .. } = back.plan(&pipeline, &failed, at(101), &[]) else {
            panic!("a rollback from failed")
        };
        assert_eq!(then.outcome.to, "pending");
    }

    /// Entering a gate whose latch holds an early event that fails it (a failed check): the
    /// play goes to `failed` instead, the latch consumed and the delivery in the history; the
    /// same request read again knows its change landed.
    #[test]
    fn entering_a_gate_whose_latched_event_fails_it_fails_the_play() {
        let gated = crate::fixtures::gated();
        let mut failing = crate::fixtures::delivery("d-red", "pod/stage-resume");
        failing.verdict = Verdict::Fails;
        let meta: ObjectMeta = serde_json::from_value(json!({
            "name": "play-42",
            "labels": {"current-stage": "waiting-pr-created"},
            "annotations": {
                pipeline::ANNOTATION: pipeline::to_json(&gated).unwrap(),
                "stagectl.dev/latch-waiting-ci": failing.to_annotation(),
            },
        }))
        .unwrap();
        let mut set = request("pod/update-to-waiting-ci");
        set.goal = Goal::Set {
            target: gated.stage("waiting-ci"),
            moves: Moves::Legal,
        };
        let step = set.plan(&gated, &meta, at(100), &[]);
        let Step::Write { then, .. } = &step else {
            panic!("{step:?}")
        };
        assert_eq!(then.outcome.to, "failed");
        assert_eq!(then.outcome.skip_wait, None);
        let after = apply(&meta, &step);
        let annotations = after.annotations.clone().unwrap();
        assert_eq!(annotations["stagectl.dev/latch-waiting-ci"], "");
        assert_eq!(
            annotations[record::FAILED_AT_ANNOTATION],
            "waiting-pr-created"
        );
        let entry = then.entry.clone().unwrap();
        assert_eq!(entry.wait_satisfied_by, Some(failing));
        assert!(
            entry
                .reason
                .unwrap()
                .contains("failed the wait of waiting-ci")
        );
        assert_eq!(after.labels.as_ref().unwrap()["current-stage"], "failed");
        let again = set.plan(&gated, &after, at(101), &attempted(&step));
        assert!(matches!(again, Step::Done(Planned { ref outcome, .. }) if outcome.to == "failed"));
        // Unread, the step forward tests the empty latch: it cannot skip the failing event.
        let Some(Step::Write { patch, .. }) = set.plan_unread(&gated, at(102)) else {
            panic!("a step forward is planned unread")
        };
        let mut workflow = json!({ "metadata": meta });
        assert!(json_patch::patch(&mut workflow, &patch).is_err());
    }

    /// Applies a write to the workflow `meta`, as the server would.
    fn apply(meta: &ObjectMeta, step: &Step<Planned>) -> ObjectMeta {
        let Step::Write { patch, .. } = step else {
            panic!("not a write: {step:?}")
        };
        let mut workflow = json!({ "metadata": meta });
        json_patch::patch(&mut workflow, patch).unwrap();
        serde_json::from_value(workflow["metadata"].clone()).unwrap()
    }

    #[test]
    fn the_first_step_records_its_definition_once_and_the_play_is_decided_by_it_after() {
        let default = Pipeline::default();
        let gated = crate::fixtures::gated();
        let set = |pipeline: &Pipeline, stage: &str, carry| ChangeRequest {
            goal: Goal::Set {
                target: pipeline.named_stage(stage).unwrap(),
                moves: Moves::Legal,
            },
            carry,
            ..request("pod/step")
        };
        let start = set(&gated, "pending", crate::pipeline::to_json(&gated));
        let fresh: ObjectMeta = serde_json::from_value(json!({
            "name": "play-42",
            "labels": {"current-stage": "pending"},
            "annotations": {"stagectl.dev/latch-waiting-pr-created": ""},
        }))
        .unwrap();
        let step = start.plan(&gated, &fresh, at(100), &[]);
        let Step::Write { patch, .. } = &step else {
            panic!("{step:?}")
        };
        assert_eq!(
            serde_json::to_value(&patch.0[0]).unwrap(),
            json!({"op": "test", "path": "/metadata/labels/current-stage", "value": "pending"}),
            "only the stage is tested: the controller's writes do not refuse it"
        );
        let carrying = apply(&fresh, &step);
        let annotations = carrying.annotations.clone().unwrap();
        assert_eq!(
            annotations[crate::pipeline::STAGES_ANNOTATION],
            "pending,waiting-pr-created,waiting-ci,waiting-run,waiting-ready-for-qa,waiting-merge,completed"
        );
        assert_eq!(annotations["stagectl.dev/latch-waiting-ci"], "");
        assert!(matches!(
            start.plan(&gated, &carrying, at(101), &[]),
            Step::Done(_)
        ));

        // Later steps and operators given the built-in definition: the play's own decides.
        let next =
            set(&default, "waiting-pr-created", None).plan(&default, &carrying, at(102), &[]);
        let at_pr = apply(&carrying, &next);
        let skipping_ci =
            set(&default, "waiting-ready-for-qa", None).plan(&default, &at_pr, at(103), &[]);
        assert!(
            matches!(&skipping_ci, Step::Refuse(why) if why.contains("needs it at \"waiting-run\"")),
            "{skipping_ci:?}"
        );
        let ci = set(&default, "waiting-ci", None).plan(&default, &at_pr, at(104), &[]);
        assert!(matches!(ci, Step::Write { .. }), "{ci:?}");
        let unknown =
            set(&default, "waiting-pr-approved", None).plan(&default, &at_pr, at(105), &[]);
        assert!(
            matches!(&unknown, Step::Fail(crate::error::Kind::Usage, why)
                if why.contains("unknown stage") && why.contains("pipeline gated")),
            "{unknown:?}"
        );
        // An operator's `set pending` with another definition does not replace the play's.
        let other = set(&default, "pending", crate::pipeline::to_json(&default));
        assert!(matches!(
            other.plan(&default, &carrying, at(106), &[]),
            Step::Done(_)
        ));
    }
}
