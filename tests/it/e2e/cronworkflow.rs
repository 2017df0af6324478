//! The CronWorkflow of workflow-templates/ under Argo's real controller: a play whose pull
//! request webhook never came is released by a scheduled reconcile run, the controller's metrics
//! count the recovery, and the webhook arriving after all changes nothing.

use std::time::Duration;

use kube::api::ListParams;
use serde_json::{Value, json};

use kube::api::DynamicObject;

use super::{
    Agent, EVERY_MINUTE, Play, Plays, RECONCILE_CRON, assert_completed_as_timed, deliveries_taken,
    increase, metrics, reconcile_cron,
};
use crate::harness::{GitHubStandIn, eventually};
use crate::reconcile::{TOKEN, standard_state};

/// The CronWorkflow's runs so far that have finished.
async fn finished_runs(plays: &Plays) -> Vec<Value> {
    let list = plays
        .ns
        .workflows()
        .list(&ListParams::default().labels(super::RECONCILE_RUNS))
        .await
        .unwrap();
    list.items
        .into_iter()
        .map(|workflow| serde_json::to_value(workflow).unwrap())
        .filter(|workflow| {
            workflow["metadata"]["labels"]["workflows.argoproj.io/completed"] == "true"
        })
        .collect()
}

fn recovered_by(run: &Value) -> Option<&str> {
    let nodes = run["status"]["nodes"].as_object()?;
    let parameters = nodes.values().find_map(|node| {
        (node["type"] == "Pod").then(|| node["outputs"]["parameters"].as_array())?
    })?;
    parameters
        .iter()
        .find(|parameter| parameter["name"] == "recovered")?["value"]
        .as_str()
}

#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn a_lost_pull_request_webhook_is_recovered_by_the_cronworkflow_and_counted_once() {
    // Alone: the controller counts every namespace's recoveries in one series, and on the
    // shared installation another test's reconcile CronWorkflow (the gated pipeline's lost
    // gates) recovers waits in the same minutes.
    let plays = Plays::alone("e2e-reconcile").await;
    let github = GitHubStandIn::start().await;
    // GitHub has the pull request; its webhook is never sent.
    github
        .set(standard_state(
            json!([{"number": 9, "branch": "task-81-api", "labels": []}]),
        ))
        .await;
    let play = Play::new(
        "81",
        "acme/widgets",
        [Agent::sent_by_test(), Agent::early(), Agent::early()],
    );
    let workflow = plays.submit(&play).await;
    plays.wait_for_stage(&workflow, "waiting-pr-created").await;
    let before = metrics(&plays.argo).await;
    plays
        .install_reconcile_cron(&github, TOKEN, EVERY_MINUTE, 3)
        .await;

    // Released by reconcile through resume's path: the wait node resumed as `argo resume`
    // does, the rest of the play as its agents' webhooks say.
    let object = assert_completed_as_timed(&plays, &play, &workflow).await;
    let delivered = deliveries_taken(&plays, &object).await;
    assert!(
        delivered.contains(&"reconcile.waiting-pr-created.pr9".to_string()),
        "{delivered:?}"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let recovering = loop {
        let runs = finished_runs(&plays).await;
        if let Some(run) = runs.iter().find(|run| recovered_by(run) == Some("1")) {
            break run.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no finished reconcile run that recovered the wait: {runs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(recovering["status"]["phase"], "Succeeded");
    let after = metrics(&plays.argo).await;
    let counted = |series: &str| increase(&before, &after, series);
    assert_eq!(
        counted("argo_workflows_stagectl_reconcile_recovered_total"),
        1.0,
        "{after:#?}"
    );
    assert!(
        counted(r#"argo_workflows_stagectl_reconcile_runs_total{result="Succeeded"}"#) >= 1.0,
        "{after:#?}"
    );
    // The play no longer waits: reconcile's gauges say nobody does.
    assert_eq!(
        after.get(r#"argo_workflows_stagectl_plays_waiting{stage="waiting-pr-created"}"#),
        Some(&0.0),
        "{after:#?}"
    );

    // The webhook arrives after all (GitHub's redelivery, say): its stage-resume succeeds and
    // changes nothing; the wait was released once.
    let resume = plays.deliver("pr-opened", &play, "late-pr-opened").await;
    assert_eq!(
        plays.finished(&resume).await["status"]["phase"],
        "Succeeded"
    );
    let again = plays.finished(&workflow).await;
    assert_eq!(
        again["metadata"]["resourceVersion"], object["metadata"]["resourceVersion"],
        "the late webhook wrote to the play"
    );
    assert_eq!(deliveries_taken(&plays, &again).await, delivered);
}

/// Argo's controller, taking up a CronWorkflow whose status says its last run was one
/// schedule earlier than the run that is already there, submits that run again when it is
/// within `startingDeadlineSeconds`, gets AlreadyExists, and returns before it schedules the
/// CronWorkflow (workflow/cron/controller.go `processNextCronItem`): no run until the object
/// changes or its 20-minute resync. A controller that restarts after its status write of a
/// run was lost (argoproj/argo-workflows#12625) takes it up in just that state: the eleventh
/// full soak's finding, 3 minutes without reconcile. The path exists only with a starting
/// deadline, which the reconcile CronWorkflow therefore does not set. Here it is created in
/// that state, as a restarted controller finds it, and runs at the next minute all the same.
#[tokio::test]
#[ignore = "needs the control plane and Argo's controller: make test"]
async fn a_reconcile_cronworkflow_one_run_behind_its_status_runs_at_the_next_minute() {
    let plays = Plays::without_events("e2e-cron-behind").await;
    let github = GitHubStandIn::start().await;
    github.set(standard_state(json!([]))).await;
    plays.install_github_token(TOKEN).await;
    let unix_now = || jiff::Timestamp::now().as_second();
    // Far enough from the next minute that the controller takes the CronWorkflow up before
    // it: in the minute's first 40 s, or else at the start of the next.
    if unix_now() % 60 >= 40 {
        tokio::time::sleep(Duration::from_secs((60 - unix_now() % 60) as u64)).await;
    }
    let now = unix_now();
    let last_run = now - now % 60;
    let next_run = last_run + 60;
    let run_name = |at: i64| format!("{RECONCILE_CRON}-{at}");

    let mut cron = reconcile_cron(&plays.pipeline_dir, &github, EVERY_MINUTE, 3);
    let run: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": run_name(last_run),
            "labels": {"workflows.argoproj.io/cron-workflow": RECONCILE_CRON},
        },
        "spec": cron.data["spec"]["workflowSpec"],
    }))
    .unwrap();
    plays.create(&run).await;
    let at = |second: i64| jiff::Timestamp::from_second(second).unwrap().to_string();
    cron.metadata.annotations = Some(
        [(
            "cronworkflows.argoproj.io/last-used-schedule".to_string(),
            "* * * * *".to_string(),
        )]
        .into(),
    );
    cron.data["status"] = json!({
        "lastScheduledTime": at(last_run - 60),
        "phase": "Active",
        "active": [],
        "succeeded": 1,
        "failed": 0,
        "conditions": [],
    });
    let from = plays.argo.controller_log_end();
    plays.create_cron(&cron).await;
    let key = format!(r#""cronWorkflow":"{}/{RECONCILE_CRON}""#, plays.ns.name);
    plays
        .argo
        .wait_for_controller_line(
            from,
            "the controller did not take up the CronWorkflow",
            // "Processing cron workflow" (v4.0), "Processing <namespace>/<name>" (v3.7).
            |line| line.contains(r#""msg":"Processing "#) && line.contains(&key),
        )
        .await;
    assert!(
        unix_now() < next_run,
        "the controller took up the CronWorkflow only after {}: too late to tell",
        at(next_run)
    );

    let due_in = Duration::from_secs((next_run - unix_now()) as u64);
    eventually(
        &format!(
            "no run of the CronWorkflow at {} 45 s after it was due; see the lines with {key} in {}",
            at(next_run),
            plays.argo.controller_log_path().display()
        ),
        due_in + Duration::from_secs(45),
        async || {
            plays
                .ns
                .workflows()
                .get_opt(&run_name(next_run))
                .await
                .unwrap()
        },
    )
    .await;
}
