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
    let workflow = plays.submit(&play).await;
    plays.wait_for_stage(&workflow, "waiting-ci").await;
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
}
