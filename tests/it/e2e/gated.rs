//! Plays of the gated pipeline under Argo's controller, through the real event path: its own
//! EventSource (check suites too) and five Sensors, all rendered from its definition, and
//! stagectl deciding each play by the definition the play carries.

use serde_json::{Value, json};

use super::{Agent, Play, Plays, assert_completed_as_timed, deliveries_taken};
use crate::harness::GitHubStandIn;

/// What the play's first step recorded: the gated definition, and its stage order for the policy.
fn assert_carries_gated(object: &Value) {
    let annotations = &object["metadata"]["annotations"];
    let carried: Value =
        serde_json::from_str(annotations["stagectl.dev/pipeline"].as_str().unwrap()).unwrap();
    assert_eq!(carried["metadata"]["name"], "gated", "{annotations:#}");
    assert_eq!(
        annotations["stagectl.dev/stages"],
        "pending,waiting-pr-created,waiting-ci,waiting-ready-for-qa,waiting-pr-approved,waiting-merged,completed",
        "{annotations:#}"
    );
}

/// Two plays at once, each gate released by its own task's event: early (latched while Rex's or
/// Tess's step runs, the wait skipped) or on time (the wait resumed); five deliveries taken by
/// each play, none by the other.
#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn gated_plays_pass_their_ci_and_merge_gates_each_by_its_own_events() {
    let plays = Plays::gated("e2e-gated").await;
    let (early, on_time) = (Agent::early(), Agent::on_time());
    let first = Play::gated(
        "71",
        "acme/widgets",
        [early, on_time, early],
        [early, on_time],
    );
    let second = Play::gated(
        "72",
        "acme/widgets",
        [on_time, early, on_time],
        [on_time, early],
    );
    let workflows = [plays.submit(&first).await, plays.submit(&second).await];
    let mut taken = Vec::new();
    for (play, workflow) in [&first, &second].into_iter().zip(&workflows) {
        let object = assert_completed_as_timed(&plays, play, workflow).await;
        assert_carries_gated(&object);
        let deliveries = deliveries_taken(&plays, &object).await;
        assert_eq!(deliveries.len(), 5, "{workflow}: {deliveries:?}");
        taken.extend(deliveries);
    }
    let mut distinct = taken.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        taken.len(),
        "a delivery taken twice: {taken:?}"
    );
}

/// The CI gate's and the merge gate's webhooks never arrive: CI passed and the pull request was
/// merged on GitHub (the stand-in), and the reconcile CronWorkflow finds both, reading check
/// suites on the pull request's head and the merged pull requests, and releases each wait once.
/// Another play's CI failed, its webhook lost as well: reconcile fails that play at the gate.
#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn a_gated_plays_lost_gate_webhooks_are_recovered_by_reconcile() {
    const TOKEN: &str = "ghp_gated_reconcile";
    let plays = Plays::gated("e2e-gated-lost").await;
    let github = GitHubStandIn::start().await;
    github
        .set(json!({
            "tokens": [TOKEN],
            "rateLimit": {"limit": 5000, "remaining": 5000, "reset": 1893456000},
            "repos": {"acme/widgets": []},
        }))
        .await;
    let early = Agent::early();
    let play = Play::gated(
        "73",
        "acme/widgets",
        [early, early, early],
        [Agent::lost(), Agent::lost()],
    )
    .on_github(&github);
    // Another task's CI fails, and that webhook is lost too: reconcile fails the play there.
    let red = Play::gated(
        "76",
        "acme/widgets",
        [early, early, early],
        [Agent::lost().failing(), early],
    )
    .on_github(&github);
    let workflow = plays.submit(&play).await;
    let red_workflow = plays.submit(&red).await;
    plays.wait_for_stage(&workflow, "waiting-ci").await;
    plays.wait_for_stage(&red_workflow, "waiting-ci").await;
    plays.install_reconcile_cron(&github, TOKEN, 3).await;

    let object = assert_completed_as_timed(&plays, &play, &workflow).await;
    assert_carries_gated(&object);
    let delivered = deliveries_taken(&plays, &object).await;
    for recovered in ["reconcile.waiting-ci.", "reconcile.waiting-merged."] {
        assert_eq!(
            delivered
                .iter()
                .filter(|id| id.starts_with(recovered))
                .count(),
            1,
            "{recovered}: {delivered:?}"
        );
    }
    assert_eq!(delivered.len(), 5, "{delivered:?}");

    let object = plays.finished(&red_workflow).await;
    assert_eq!(
        object["status"]["phase"],
        "Failed",
        "{}",
        super::describe(&object)
    );
    let record = plays.record(&red_workflow).await;
    assert_eq!(record["stage"], "failed", "{record:#}");
    let failing = record["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["to"] == "failed")
        .unwrap_or_else(|| panic!("no change to failed: {record:#}"));
    assert_eq!(failing["from"], "waiting-ci", "{record:#}");
    let by = &failing["waitSatisfiedBy"];
    assert_eq!(by["verdict"], "fails", "{record:#}");
    assert!(
        by["deliveryId"]
            .as_str()
            .is_some_and(|id| id.starts_with("reconcile.waiting-ci.")),
        "{record:#}"
    );
}

/// CI fails at the gate (`failedBy`): on time, the Sensor of the failure starts a stage-resume
/// that fails the wait node and moves the play to `failed` in one compare-and-swap; early (the
/// check suite completed while Rex's step still ran), the event is latched as failing and the
/// step entering the gate moves the play to `failed` instead and fails. Either way the workflow
/// fails there, nothing after the gate runs, and the history names the delivery.
#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn a_failed_check_ends_the_play_failed_at_the_ci_gate() {
    let plays = Plays::gated("e2e-gated-red").await;
    let early = Agent::early();
    let on_time = Play::gated(
        "74",
        "acme/widgets",
        [early, early, early],
        [Agent::on_time().failing(), early],
    );
    let before = Play::gated(
        "75",
        "acme/widgets",
        [early, early, early],
        [early.failing(), early],
    );
    let workflows = [plays.submit(&on_time).await, plays.submit(&before).await];
    for (workflow, failed_from, gate_node) in [
        (&workflows[0], "waiting-ci", "wait-ci"),
        (&workflows[1], "waiting-pr-created", "update-to-waiting-ci"),
    ] {
        let object = plays.finished(workflow).await;
        assert_eq!(
            object["status"]["phase"],
            "Failed",
            "{workflow}: {}",
            super::describe(&object)
        );
        assert_carries_gated(&object);
        let failed_node = super::nodes_named(&object, gate_node);
        assert_eq!(
            failed_node.len(),
            1,
            "{workflow}: {}",
            super::describe(&object)
        );
        assert_eq!(failed_node[0]["phase"], "Failed", "{workflow}");
        assert!(
            super::nodes_named(&object, "cleo")
                .iter()
                .all(|node| node["type"] == "Skipped"),
            "{workflow}: nothing after the gate runs: {}",
            super::describe(&object)
        );
        let record = plays.record(workflow).await;
        assert_eq!(record["stage"], "failed", "{record:#}");
        let history = record["history"].as_array().unwrap();
        let failing = history
            .iter()
            .find(|entry| entry["to"] == "failed")
            .unwrap_or_else(|| panic!("{workflow}: no change to failed: {record:#}"));
        assert_eq!(failing["from"], failed_from, "{record:#}");
        assert_eq!(failing["waitSatisfiedBy"]["verdict"], "fails", "{record:#}");
        assert_eq!(
            failing["waitSatisfiedBy"]["event"], "check_suite",
            "{record:#}"
        );
        assert!(
            failing["reason"]
                .as_str()
                .is_some_and(|r| r.contains("failed the wait of waiting-ci")),
            "{record:#}"
        );
        // One change to failed: the exit handler found the play failed already.
        assert_eq!(
            history
                .iter()
                .filter(|entry| entry["to"] == "failed")
                .count(),
            1,
            "{record:#}"
        );
    }
}
