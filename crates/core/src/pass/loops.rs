//! A play's passes, decided end to end in memory: an event at a wait, a latched one, the steps of
//! a pass that is over, the pass limit, and events of an earlier pass.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use crate::change::{ChangeRequest, ChangeResult, Goal};
use crate::event::{EventFacts, Verdict};
use crate::fixtures;
use crate::labels::{Repository, TaskId, WorkflowName};
use crate::latch::{Delivery, latch_key};
use crate::pass::{PASS_ANNOTATION, PASS_BEGAN_ANNOTATION};
use crate::record::{ChangeKind, history};
use crate::resume::{EventRequest, Outcome};
use crate::stage::{Moves, Pipeline};
use crate::{Observed, Step};

const APPROVAL: &str = "waiting-pr-approved";

fn p() -> Pipeline {
    Pipeline::default()
}

/// A play of the shipped pipeline at `stage` in `pass`, as the template creates it, with its
/// wait nodes (`nodes`).
fn play(stage: &str, pass: u32, nodes: Value) -> Value {
    let mut annotations = json!({PASS_ANNOTATION: pass.to_string()});
    if pass > 1 {
        annotations[PASS_BEGAN_ANNOTATION] = json!("2026-12-07T10:00:00.5Z");
    }
    for wait in p().waiting_stages() {
        annotations[latch_key(wait.name())] = json!("");
    }
    json!({
        "metadata": {
            "name": "play-42",
            "resourceVersion": "5",
            "labels": {"current-stage": stage, "task-id": "42", "workflow-type": "play-orchestration"},
            "annotations": annotations,
        },
        "status": {"nodes": nodes},
    })
}

fn node(stage: &str, pass: u32, phase: &str) -> Value {
    json!({"type": "Suspend", "phase": phase, "inputs": {"parameters": [
        {"name": "stage", "value": stage}, {"name": "pass", "value": pass.to_string()}]}})
}

fn observed(workflow: &Value) -> Observed {
    Observed {
        meta: meta(workflow),
        status: Some(workflow["status"].clone()),
    }
}

fn meta(workflow: &Value) -> ObjectMeta {
    serde_json::from_value(workflow["metadata"].clone()).unwrap()
}

fn review(id: &str, state: &str, occurred: Option<&str>) -> EventRequest {
    EventRequest {
        namespace: "argo".into(),
        stage: p().stage(APPROVAL),
        task_id: TaskId::parse("42").unwrap(),
        repository: Some(Repository::parse("acme/widgets").unwrap()),
        delivery: Delivery {
            event: Some("pull_request_review".into()),
            ..fixtures::delivery(id, "stage-resume/x")
        },
        facts: Some(EventFacts {
            review_state: Some(state.into()),
            occurred_at: occurred.map(|t| t.parse().unwrap()),
            ..EventFacts::new("pull_request_review", "submitted")
        }),
        pass: None,
    }
}

fn set(stage: &str, pass: u32) -> ChangeRequest {
    ChangeRequest {
        workflow: WorkflowName::parse("play-42").unwrap(),
        namespace: "argo".into(),
        task_id: None,
        repository: None,
        goal: Goal::Set {
            target: p().stage(stage),
            moves: Moves::Legal,
        },
        reason: None,
        actor: "pod/step".into(),
        carry: None,
        pass: Some(pass),
    }
}

/// Applies a plan's patch as the server would, and says what it was planned to do.
fn apply<T: std::fmt::Debug>(workflow: &mut Value, step: Step<T>) -> T {
    let Step::Write { patch, then } = step else {
        panic!("expected a write, got {step:?}")
    };
    json_patch::patch(workflow, &patch).unwrap();
    then
}

/// The event, planned against the workflow as it is and applied.
fn deliver(workflow: &mut Value, event: &EventRequest) -> crate::resume::Resolution {
    let step = event.plan(&p(), &observed(workflow));
    apply(workflow, step)
}

/// The change, planned against the workflow as read and applied.
fn change(workflow: &mut Value, request: &ChangeRequest) -> crate::change::Planned {
    let step = request.plan(&p(), &meta(workflow), now(), &[]);
    apply(workflow, step)
}

fn now() -> Timestamp {
    fixtures::at(1_796_000_000)
}

#[test]
fn a_change_request_at_the_wait_sends_the_play_back_for_its_next_pass_in_one_write() {
    let mut workflow = play(APPROVAL, 1, json!({"n1": node(APPROVAL, 1, "Running")}));
    let changes = review("d-cr", "changes_requested", None);
    let done = deliver(&mut workflow, &changes);
    assert_eq!(done.outcome, Outcome::SentBack);

    let annotations = &workflow["metadata"]["annotations"];
    assert_eq!(workflow["metadata"]["labels"]["current-stage"], "pending");
    assert_eq!(annotations[PASS_ANNOTATION], "2");
    assert_eq!(
        annotations[PASS_BEGAN_ANNOTATION],
        fixtures::delivery("d-cr", "x").at.to_string()
    );
    // The wait node is over as `argo resume` leaves it: the template's next step finds the pass
    // over and starts the next.
    assert_eq!(workflow["status"]["nodes"]["n1"]["phase"], "Succeeded");
    let entry = history(&meta(&workflow)).into_values().next_back().unwrap();
    assert_eq!(entry.kind, ChangeKind::SentBack);
    assert_eq!(
        (entry.from.as_str(), entry.to.as_str(), entry.pass),
        (APPROVAL, "pending", 2)
    );
    assert_eq!(entry.wait_satisfied_by.unwrap().verdict, Verdict::SendsBack);
    assert!(entry.reason.unwrap().contains("pass 2 of at most 3"));

    // Redelivered: known, and nothing moves again.
    let again = changes.plan(&p(), &observed(&workflow));
    assert!(
        matches!(&again, Step::Done(r) if r.outcome == Outcome::SentBack),
        "{again:?}"
    );
    // The step after the wait, of pass 1, finds its pass over and says which pass follows.
    let Step::Done(over) = set("completed", 1).plan(&p(), &meta(&workflow), now(), &[]) else {
        panic!("expected the pass to be over")
    };
    assert_eq!(
        (over.outcome.outcome, over.outcome.pass),
        (ChangeResult::PassOver, 2)
    );
    // ... and holds the template until pass 2's first whole second: an agent of pass 2 then acts
    // in a second its events are dated to, which pass 1's cannot be.
    let began: jiff::Timestamp = annotations[PASS_BEGAN_ANNOTATION]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let held = over.outcome.hold_until.unwrap();
    assert!(held >= began && held.subsec_nanosecond() == 0, "{held}");
    assert!(held.duration_since(began) <= jiff::SignedDuration::from_secs(1));
    let pass = crate::pass::Pass::of(&meta(&workflow)).unwrap();
    assert!(!pass.admits(Some(
        jiff::Timestamp::from_second(held.as_second() - 1).unwrap()
    )));
    assert!(pass.admits(Some(held)));
    // A step that claims a pass the play has not reached is refused.
    assert!(matches!(
        set("waiting-pr-created", 3).plan(&p(), &meta(&workflow), now(), &[]),
        Step::Refuse(why) if why.contains("pass 2, not 3")
    ));
}

#[test]
fn an_early_change_request_sends_the_play_back_when_it_reaches_the_wait() {
    let mut workflow = play("waiting-ready-for-qa", 1, json!({}));
    let changes = review("d-early", "CHANGES_REQUESTED", None);
    let latched = deliver(&mut workflow, &changes);
    assert_eq!(latched.outcome, Outcome::Latched);
    assert!(
        latched.detail.contains("send the play back"),
        "{}",
        latched.detail
    );

    let entered = change(&mut workflow, &set(APPROVAL, 1));
    assert_eq!(entered.outcome.to, "pending");
    assert_eq!(entered.outcome.pass, 2);
    assert_eq!(entered.outcome.skip_wait, Some(true));
    let annotations = &workflow["metadata"]["annotations"];
    assert_eq!(
        annotations[latch_key(APPROVAL)],
        "",
        "the latch is consumed"
    );
    assert_eq!(annotations[PASS_ANNOTATION], "2");
    let entry = history(&meta(&workflow)).into_values().next_back().unwrap();
    assert_eq!(
        (entry.from.as_str(), entry.to.as_str(), entry.kind),
        ("waiting-ready-for-qa", "pending", ChangeKind::SentBack)
    );
    assert!(entry.reason.unwrap().contains("before the play reached it"));

    // Pass 2 runs as the first did, each of its steps testing its pass.
    let step = set("waiting-pr-created", 2)
        .plan_unread(&p(), now())
        .unwrap();
    let Step::Write { patch, .. } = &step else {
        panic!("{step:?}")
    };
    assert!(serde_json::to_string(patch).unwrap().contains(
        r#"{"op":"test","path":"/metadata/annotations/stagectl.dev~1pass","value":"2"}"#
    ));
    apply(&mut workflow, step);
    assert_eq!(
        history(&meta(&workflow))
            .into_values()
            .next_back()
            .unwrap()
            .pass,
        2
    );
}

#[test]
fn a_send_back_in_the_last_pass_fails_the_play_at_its_wait() {
    let mut workflow = play(APPROVAL, 3, json!({"n3": node(APPROVAL, 3, "Running")}));
    let changes = review("d-third", "changes_requested", Some("2026-12-07T10:05:00Z"));
    let done = deliver(&mut workflow, &changes);
    assert_eq!(done.outcome, Outcome::Failed);
    assert_eq!(workflow["metadata"]["labels"]["current-stage"], "failed");
    assert_eq!(
        workflow["metadata"]["annotations"]["stagectl.dev/failed-at"],
        APPROVAL
    );
    assert_eq!(workflow["metadata"]["annotations"][PASS_ANNOTATION], "3");
    assert_eq!(workflow["status"]["nodes"]["n3"]["phase"], "Failed");
    let entry = history(&meta(&workflow)).into_values().next_back().unwrap();
    assert_eq!(entry.pass, 3);
    assert!(entry.reason.unwrap().contains("pass limit reached"));
    // The exit handler's `set failed` finds it failed already, and why.
    let Step::Done(marked) = set("failed", 3).plan(&p(), &meta(&workflow), now(), &[]) else {
        panic!("expected a no-op")
    };
    assert_eq!(
        marked.outcome.failure,
        Some(crate::record::Failure::PassLimit)
    );

    // Early, the `set` entering the wait fails the play instead, and the step fails.
    let mut workflow = play("waiting-ready-for-qa", 3, json!({}));
    deliver(&mut workflow, &changes);
    let entered = change(&mut workflow, &set(APPROVAL, 3));
    assert_eq!(
        (entered.outcome.to.as_str(), entered.outcome.pass),
        ("failed", 3)
    );
}

#[test]
fn an_event_of_an_earlier_pass_releases_nothing_of_a_later_one() {
    // Pass 2 began at 10:00:00.5; pass 1's wait node is over, pass 2's runs.
    let nodes = json!({"n1": node(APPROVAL, 1, "Succeeded"), "n2": node(APPROVAL, 2, "Running")});
    let workflow = play(APPROVAL, 2, nodes);
    for stale in ["2026-12-07T09:58:00Z", "2026-12-07T10:00:00Z"] {
        let approval = review("d-late", "approved", Some(stale));
        let step = approval.plan(&p(), &observed(&workflow));
        assert!(
            matches!(&step, Step::Done(r) if r.outcome == Outcome::Noop && r.detail.contains("earlier pass")),
            "{step:?}"
        );
    }
    let fresh = review("d-fresh", "approved", Some("2026-12-07T10:00:01Z"));
    let mut resumed = workflow.clone();
    assert_eq!(
        apply(&mut resumed, fresh.plan(&p(), &observed(&workflow))).outcome,
        Outcome::Resumed
    );
    assert_eq!(resumed["status"]["nodes"]["n2"]["phase"], "Succeeded");
    assert_eq!(resumed["status"]["nodes"]["n1"]["phase"], "Succeeded");

    // Pass 2 has not reached its wait node yet: pass 1's finished one is no answer.
    let before = play(APPROVAL, 2, json!({"n1": node(APPROVAL, 1, "Succeeded")}));
    assert!(matches!(
        fresh.plan(&p(), &observed(&before)),
        Step::Wait(why) if why.contains("did not create its wait node")
    ));

    // A latch is written only in the pass it was planned in.
    let qa = play("waiting-ready-for-qa", 2, json!({}));
    let early = review("d-early", "approved", Some("2026-12-07T10:03:00Z"));
    let Step::Write { patch, .. } = early.plan(&p(), &observed(&qa)) else {
        panic!("expected a latch")
    };
    let mut third = qa.clone();
    third["metadata"]["annotations"][PASS_ANNOTATION] = json!("3");
    assert!(json_patch::patch(&mut third, &patch).is_err());
}

/// An event found for a pass (reconcile reads GitHub for the pass a play was in when listed)
/// is of that pass whenever it is delivered: in the second the pass began, or long after.
#[test]
fn an_event_found_for_a_pass_is_taken_in_that_pass_only() {
    let nodes = json!({"n1": node(APPROVAL, 1, "Succeeded"), "n2": node(APPROVAL, 2, "Running")});
    let workflow = play(APPROVAL, 2, nodes);
    let found = |pass| EventRequest {
        pass: Some(pass),
        ..review("reconcile.waiting-pr-approved.pass2.pr1", "approved", None)
    };
    let mut resumed = workflow.clone();
    assert_eq!(
        apply(&mut resumed, found(2).plan(&p(), &observed(&workflow))).outcome,
        Outcome::Resumed
    );
    for other in [1, 3] {
        let step = found(other).plan(&p(), &observed(&workflow));
        assert!(
            matches!(&step, Step::Done(r) if r.outcome == Outcome::Noop
                && r.detail.contains(&format!("for pass {other} of the play, which is in pass 2"))),
            "{step:?}"
        );
    }
}

/// The moves that change a play's pass, or keep it, as tests/vectors/stage-moves.json holds them
/// for both this crate and the API server's policy: a pass changes only where [`Decided`] sends a
/// play back; every other move keeps it and is one of set's or rollback's.
#[test]
fn the_pass_moves_are_those_of_the_shared_vectors() {
    use crate::change::Decided;
    use crate::pass::Pass;
    use crate::stage::Transition;

    let vectors: Value =
        serde_json::from_str(include_str!("../../../../tests/vectors/stage-moves.json")).unwrap();
    let table = &vectors["passes"];
    let pipeline = p();
    let stages: Vec<&str> = pipeline.stages().collect();
    assert_eq!(table["stages"], json!(stages));
    assert_eq!(table["passes"], pipeline.passes());
    assert_eq!(
        table["backEdges"],
        json!(crate::pass::back_edges(&pipeline))
    );

    // Every move a send-back makes, from the wait or from the stage before it (latched).
    let mut sent_back = Vec::new();
    let delivery = Delivery {
        verdict: Verdict::SendsBack,
        ..fixtures::delivery("d", "x")
    };
    for (wait, _) in pipeline.back_edges() {
        let before = pipeline.predecessor(&wait).unwrap();
        for from in [wait.clone(), before] {
            for number in 1..=pipeline.passes() + 1 {
                let pass = Pass {
                    number,
                    began: None,
                    annotated: true,
                };
                let decided = Decided {
                    wait: &wait,
                    delivery: &delivery,
                    by: "x",
                    at: now(),
                    pass,
                };
                let meta = crate::fixtures::Meta::named("p").build();
                let (_, entry) = decided.change(&pipeline, &from, "", &meta);
                sent_back.push((entry.from, entry.to, number, entry.pass));
            }
        }
    }
    let mut checked = 0;
    for row in table["moves"].as_array().unwrap() {
        let (from, to) = (row["from"].as_str().unwrap(), row["to"].as_str().unwrap());
        let (before, after) = (
            row["pass"][0].as_u64().unwrap() as u32,
            row["pass"][1].as_u64().unwrap() as u32,
        );
        let legal = row["legal"].as_bool().unwrap();
        let made = if before != after {
            sent_back.contains(&(from.to_string(), to.to_string(), before, after))
        } else {
            let (from, to) = (pipeline.stage(from), pipeline.stage(to));
            let failed_at = from.is_failed().then(|| to.clone());
            [
                pipeline.plan_set(&from, &to, Moves::Legal),
                pipeline.plan_rollback(&from, failed_at.as_ref(), Some(&to)),
            ]
            .iter()
            .any(|t| {
                matches!(
                    t,
                    Transition::Noop | Transition::Apply { forced: false, .. }
                )
            })
        };
        assert_eq!(made, legal, "{row}");
        checked += 1;
    }
    assert!(checked >= 15, "{checked}");
}

/// An operator's repair keeps the play in its pass: a rollback or a forced move in pass 2 is
/// recorded in pass 2, and never writes the pass.
#[test]
fn rollback_and_force_keep_the_pass() {
    let mut workflow = play("waiting-pr-created", 2, json!({}));
    let rollback = ChangeRequest {
        goal: Goal::Rollback { to: None },
        pass: None,
        ..set("pending", 2)
    };
    let done = change(&mut workflow, &rollback);
    assert_eq!(
        (done.outcome.to.as_str(), done.outcome.pass),
        ("pending", 2)
    );
    let forced = ChangeRequest {
        goal: Goal::Set {
            target: p().last(),
            moves: Moves::Any,
        },
        pass: None,
        ..set("completed", 2)
    };
    let done = change(&mut workflow, &forced);
    assert_eq!(
        (done.outcome.to.as_str(), done.outcome.pass),
        ("completed", 2)
    );
    for entry in history(&meta(&workflow)).into_values() {
        assert_eq!(entry.pass, 2, "{entry:?}");
    }
    assert_eq!(workflow["metadata"]["annotations"][PASS_ANNOTATION], "2");
}

/// A CI gate that sends the play back when a check suite fails: the same decision as a change
/// request, by the definition's other back edge — a failed suite on time sends the play back to
/// its implementer, and reconcile, finding only a failed suite, delivers it as that event.
#[test]
fn a_failed_check_at_a_ci_gate_sends_the_play_back() {
    use crate::github::{Completed, PullRequest};
    use crate::reconcile::{Decision, GitHubFacts, WaitingPlay, decide};
    use crate::record::StageRecord;
    use std::sync::Arc;

    let gate = crate::pipeline::parse(
        "apiVersion: stagectl.dev/v1alpha1
kind: Pipeline
metadata: {name: ci-loop}
spec:
  passes: 2
  stages:
    - name: pending
    - name: waiting-pr-created
      releasedBy: {event: pull-request-pushed}
    - name: waiting-ci
      releasedBy: {event: check-suite-completed, conclusion: success}
      sentBackBy: {event: check-suite-completed, conclusion: failure, to: pending}
    - name: completed
",
        "ci-loop.yaml",
    )
    .unwrap();
    let carried = crate::pipeline::to_json(&gate).unwrap();
    let mut workflow = play(
        "waiting-ci",
        1,
        json!({"n": node("waiting-ci", 1, "Running")}),
    );
    workflow["metadata"]["annotations"][crate::pipeline::ANNOTATION] = json!(carried);
    let red = EventRequest {
        stage: gate.stage("waiting-ci"),
        delivery: Delivery {
            event: Some("check_suite".into()),
            ..fixtures::delivery("d-red", "stage-resume/x")
        },
        facts: Some(EventFacts {
            conclusion: Some("failure".into()),
            ..EventFacts::new("check_suite", "completed")
        }),
        ..review("d-red", "changes_requested", None)
    };
    assert_eq!(deliver(&mut workflow, &red).outcome, Outcome::SentBack);
    assert_eq!(workflow["metadata"]["labels"]["current-stage"], "pending");
    assert_eq!(workflow["metadata"]["annotations"][PASS_ANNOTATION], "2");

    // Reconcile, the webhook lost: a failed suite on the head, none passed.
    let mut waiting = play("waiting-ci", 1, json!({}));
    waiting["metadata"]["annotations"][crate::pipeline::ANNOTATION] = json!(carried);
    waiting["metadata"]["labels"]["repository"] = json!("acme.widgets");
    let record = StageRecord::from_meta(&meta(&waiting), Arc::new(gate.clone()));
    let plays: Vec<WaitingPlay> = crate::reconcile::waiting_plays([record]);
    let widgets = Repository::parse("acme/widgets").unwrap();
    let mut facts = GitHubFacts::default();
    facts.add_pulls(
        &widgets,
        vec![PullRequest {
            number: 5,
            head_ref: "task-42".into(),
            labels: vec![],
            head_sha: "abc".into(),
            merged: false,
            updated_at: None,
        }],
    );
    let failed = Completed {
        name: String::new(),
        conclusion: "failure".into(),
        updated_at: None,
    };
    facts.add_check_suites(&widgets, "abc", vec![failed]);
    let Decision::Deliver(sent) = decide(&plays[0], &facts) else {
        panic!("{:?}", decide(&plays[0], &facts))
    };
    assert_eq!(sent.verdict, Verdict::SendsBack);
}
