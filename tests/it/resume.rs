//! resume and the early-event latch, with the real binary against the real server. No Argo
//! controller runs here, so the tests play its part: when a play reaches a waiting stage they
//! write the wait's node into the Workflow's status in Argo's own node format (a Suspend node
//! with the stage as input, or a Skipped node when the template's `when` skips the wait), and
//! read back what resume did to it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::harness::{AuditedRequest, OwnControlPlane, Run, TestNamespace, WaitNode};

const WAITS: [&str; 3] = [
    "waiting-pr-created",
    "waiting-ready-for-qa",
    "waiting-pr-approved",
];

/// A read of `workflow` by stagectl: after resume's list, a read means it is waiting for the node.
pub fn is_read_by_stagectl(request: &AuditedRequest, workflow: &str) -> bool {
    request.verb == "get"
        && request.resource == "workflows"
        && request.name == workflow
        && request.user_agent == stagectl::USER_AGENT
}

async fn resume(
    ns: &TestNamespace,
    stage: &str,
    task: &str,
    repository: &str,
    delivery: &str,
) -> Run {
    ns.stagectl(&[
        "resume",
        "--stage",
        stage,
        "--task-id",
        task,
        "--repository",
        repository,
        "--delivery-id",
        delivery,
        "--event",
        "pull_request",
        "--wait-for-node",
        "30s",
        "-o",
        "json",
    ])
    .await
}

/// A play of `task` that has failed, as its exit handler leaves it.
async fn failed_play(ns: &TestNamespace, task: &str) -> String {
    let workflow = ns.create_play_of(task, "acme/widgets").await;
    fail(ns, &workflow).await;
    workflow
}

async fn fail(ns: &TestNamespace, workflow: &str) {
    ns.stagectl(&[
        "set",
        "failed",
        "--workflow",
        workflow,
        "--reason",
        "agent crashed",
    ])
    .await
    .assert_code(0);
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn an_early_event_is_latched_and_the_next_set_skips_the_wait() {
    let ns = TestNamespace::new("early-event").await;
    let workflow = ns.create_play_of("42", "acme/widgets").await;

    // Rex opens the PR while it still runs: the play is at pending.
    let early = resume(&ns, "waiting-pr-created", "42", "acme/widgets", "d-early").await;
    early.assert_code(0);
    assert_eq!(early.json()["outcome"], "latched");
    assert_eq!(early.json()["workflow"], workflow.as_str());

    assert!(
        ns.set_stage(&workflow, "waiting-pr-created").await,
        "the wait is skipped"
    );
    let record = ns.stagectl(&["get", &workflow, "-o", "json"]).await.json();
    let entry = &record["history"][0];
    assert_eq!(entry["to"], "waiting-pr-created");
    assert_eq!(entry["waitSatisfiedBy"]["deliveryId"], "d-early");
    let meta = ns.meta(&workflow).await;
    assert_eq!(
        meta.annotations.as_ref().unwrap()["stagectl.dev/latch-waiting-pr-created"],
        "",
        "latch consumed"
    );

    // A retried update step gets the same answer; the controller skips the wait.
    assert!(ns.set_stage(&workflow, "waiting-pr-created").await);
    ns.controller_reaches_wait(&workflow, "waiting-pr-created", WaitNode::Skipped)
        .await;
    // The event again, and a late event of another delivery: both change nothing.
    let before = ns.meta(&workflow).await.resource_version;
    for delivery in ["d-early", "d-other"] {
        let again = resume(&ns, "waiting-pr-created", "42", "acme/widgets", delivery).await;
        again.assert_code(0);
        assert_eq!(again.json()["outcome"], "noop", "{}", again.stdout);
    }
    assert_eq!(ns.meta(&workflow).await.resource_version, before);
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn an_event_on_time_resumes_the_node_as_argo_resume_would() {
    let ns = TestNamespace::new("on-time-event").await;
    let workflow = ns.create_play_of("7", "acme/widgets").await;
    assert!(!ns.set_stage(&workflow, "waiting-pr-created").await);
    ns.controller_reaches_wait(&workflow, "waiting-pr-created", WaitNode::Suspend)
        .await;

    let run = resume(&ns, "waiting-pr-created", "7", "acme/widgets", "d-on-time").await;
    run.assert_code(0);
    assert_eq!(run.json()["outcome"], "resumed");

    let resumed = ns.node(&workflow, "waiting-pr-created").await;
    assert_eq!(resumed["phase"], "Succeeded");
    assert_eq!(resumed["type"], "Suspend");
    assert!(resumed["finishedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        resumed["message"],
        "Resumed by stagectl: pull_request (delivery d-on-time)"
    );
    assert_eq!(
        resumed["inputs"]["parameters"][0]["value"], "waiting-pr-created",
        "the rest is untouched"
    );
    let meta = ns.meta(&workflow).await;
    assert_eq!(
        meta.labels.as_ref().unwrap()["current-stage"],
        "waiting-pr-created"
    );
    assert!(
        meta.labels
            .as_ref()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("workflows.argoproj.io/")),
        "no controller label written"
    );

    let duplicate = resume(&ns, "waiting-pr-created", "7", "acme/widgets", "d-on-time").await;
    duplicate.assert_code(0);
    assert_eq!(duplicate.json()["outcome"], "noop");
}

/// A resume's floor: one list that finds the play with its wait node, one compare-and-swap.
/// Among other plays (of other tasks, and one of the same task that has failed), and with the
/// event latched first: each delivery is those two requests.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn a_resume_is_one_list_and_one_patch() {
    let ns = TestNamespace::new("resume-requests").await;
    for task in ["8", "9"] {
        ns.create_play_of(task, "acme/widgets").await;
    }
    failed_play(&ns, "7").await;
    let workflow = ns.create_play_of("7", "acme/widgets").await;
    let workflow_requests = |requests: Vec<AuditedRequest>| -> Vec<(String, String)> {
        requests
            .into_iter()
            .filter(|r| r.resource == "workflows" && r.user_agent == stagectl::USER_AGENT)
            .map(|r| (r.verb, r.name))
            .collect()
    };
    let expected = |written: &str| {
        vec![
            ("list".to_string(), String::new()),
            ("patch".to_string(), written.to_string()),
        ]
    };

    let before = ns.audited_requests().await.len();
    let latched = resume(&ns, "waiting-pr-created", "7", "acme/widgets", "d-early").await;
    latched.assert_code(0);
    assert_eq!(latched.json()["outcome"], "latched");
    assert_eq!(
        workflow_requests(ns.audited_requests().await.split_off(before)),
        expected(&workflow)
    );

    assert!(ns.set_stage(&workflow, "waiting-pr-created").await);
    assert!(!ns.set_stage(&workflow, "waiting-ready-for-qa").await);
    ns.controller_reaches_wait(&workflow, "waiting-ready-for-qa", WaitNode::Suspend)
        .await;
    let before = ns.audited_requests().await.len();
    let resumed = resume(
        &ns,
        "waiting-ready-for-qa",
        "7",
        "acme/widgets",
        "d-on-time",
    )
    .await;
    resumed.assert_code(0);
    assert_eq!(resumed.json()["outcome"], "resumed");
    assert_eq!(
        workflow_requests(ns.audited_requests().await.split_off(before)),
        expected(&workflow)
    );
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn an_event_before_the_node_exists_waits_for_it() {
    let ns = Arc::new(TestNamespace::new("wait-for-node").await);
    let workflow = ns.create_play_of("9", "acme/widgets").await;
    assert!(!ns.set_stage(&workflow, "waiting-pr-created").await);

    let before = ns.audited_requests().await.len();
    let waiting = {
        let ns = ns.clone();
        tokio::spawn(async move {
            resume(&ns, "waiting-pr-created", "9", "acme/widgets", "d-wait").await
        })
    };
    // After its list, resume reads the play again only to see whether the node has come.
    ns.audited_eventually(before, "resume reading the play again for its node", |r| {
        is_read_by_stagectl(r, &workflow)
    })
    .await;
    assert!(!waiting.is_finished(), "resume waits for the node");
    ns.controller_reaches_wait(&workflow, "waiting-pr-created", WaitNode::Suspend)
        .await;
    let run = waiting.await.unwrap();
    run.assert_code(0);
    assert_eq!(run.json()["outcome"], "resumed");
    assert_eq!(
        ns.node(&workflow, "waiting-pr-created").await["phase"],
        "Succeeded"
    );

    // A node that never comes: the gave-up code, nothing written.
    let other = ns.create_play_of("10", "acme/widgets").await;
    assert!(!ns.set_stage(&other, "waiting-pr-created").await);
    let before = ns.meta(&other).await.resource_version;
    let run = ns
        .stagectl(&[
            "resume",
            "--stage",
            "waiting-pr-created",
            "--task-id",
            "10",
            "--wait-for-node",
            "1s",
        ])
        .await;
    run.assert_code(6);
    assert!(
        run.error_lines()[0].contains("did not create its wait node"),
        "{}",
        run.stderr
    );
    assert_eq!(ns.meta(&other).await.resource_version, before);
}

/// The wait for the node has a budget of its own: it outlasts --timeout, which bounds each API
/// operation, not the wait. The --timeout is one a loaded test server meets: a run of make test
/// saw one GET of a workflow take 3.3 s while other tests started control planes of their own,
/// and a 2 s budget then failed the final patch, as it should.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn the_wait_for_the_node_outlasts_the_timeout_of_the_api_calls() {
    let ns = Arc::new(TestNamespace::new("wait-past-timeout").await);
    let workflow = ns.create_play_of("21", "acme/widgets").await;
    assert!(!ns.set_stage(&workflow, "waiting-pr-created").await);
    let before = ns.audited_requests().await.len();
    let timeout_over = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(15);
    let waiting = {
        let ns = ns.clone();
        tokio::spawn(async move {
            ns.stagectl(&[
                "resume",
                "--stage",
                "waiting-pr-created",
                "--task-id",
                "21",
                "--delivery-id",
                "d-patient",
                "--timeout",
                "15s",
                "--wait-for-node",
                "60s",
                "-o",
                "json",
            ])
            .await
        })
    };
    ns.audited_eventually(before, "resume reading the play after its --timeout", |r| {
        is_read_by_stagectl(r, &workflow) && r.received > timeout_over
    })
    .await;
    assert!(!waiting.is_finished(), "resume still waits after --timeout");
    ns.controller_reaches_wait(&workflow, "waiting-pr-created", WaitNode::Suspend)
        .await;
    let run = waiting.await.unwrap();
    run.assert_code(0);
    assert_eq!(run.json()["outcome"], "resumed");
}

/// A play that failed (its exit handler still running) takes no event; a newer play of the same
/// task does, with --repository or without.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn an_event_goes_past_a_failed_play_to_the_newer_play_of_the_task() {
    let ns = TestNamespace::new("failed-and-newer").await;
    let running = json!({"metadata": {"labels": {"workflows.argoproj.io/phase": "Running"}}});
    let failed = failed_play(&ns, "31").await;
    let newer = ns.create_play_of("31", "acme/widgets").await;
    for workflow in [&failed, &newer] {
        ns.workflows()
            .patch(
                workflow,
                &PatchParams::default(),
                &Patch::Merge(running.clone()),
            )
            .await
            .unwrap();
    }
    let failed_version = ns.meta(&failed).await.resource_version;
    let run = resume(&ns, "waiting-pr-created", "31", "acme/widgets", "d-newer").await;
    run.assert_code(0);
    assert_eq!(run.json()["workflow"], newer.as_str());
    assert_eq!(run.json()["outcome"], "latched");
    assert_eq!(ns.meta(&failed).await.resource_version, failed_version);
}

/// A second play of a task waits on the template's mutex (Pending) while the first runs: events
/// go to the running one. A redelivery goes to the play that saw it, even once that play has
/// ended and another of the task runs.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn events_go_to_the_play_the_mutex_lets_run_and_redeliveries_to_the_play_that_saw_them() {
    let ns = TestNamespace::new("resume-queued").await;
    let phase = |workflow: String, phase: &'static str, completed: bool| {
        let ns = &ns;
        async move {
            let mut labels = json!({"workflows.argoproj.io/phase": phase});
            if completed {
                labels["workflows.argoproj.io/completed"] = json!("true");
            }
            ns.workflows()
                .patch(
                    &workflow,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": labels}})),
                )
                .await
                .unwrap();
        }
    };
    let first = ns.create_play_of("9", "acme/widgets").await;
    let queued = ns.create_play_of("9", "acme/widgets").await;
    phase(first.clone(), "Running", false).await;
    phase(queued.clone(), "Pending", false).await;
    let early = resume(&ns, "waiting-pr-created", "9", "acme/widgets", "first-pr").await;
    early.assert_code(0);
    assert_eq!(early.json()["workflow"], first.as_str());
    assert_eq!(early.json()["outcome"], "latched");

    // The first play ends; the queued one takes the mutex. GitHub redelivers the first's event.
    phase(first.clone(), "Succeeded", true).await;
    phase(queued.clone(), "Running", false).await;
    let queued_version = ns.meta(&queued).await.resource_version;
    let redelivered = resume(&ns, "waiting-pr-created", "9", "acme/widgets", "first-pr").await;
    redelivered.assert_code(0);
    assert_eq!(redelivered.json()["workflow"], first.as_str());
    assert_eq!(redelivered.json()["outcome"], "noop");
    assert_eq!(ns.meta(&queued).await.resource_version, queued_version);
    // A new event is the queued play's.
    let own = resume(&ns, "waiting-pr-created", "9", "acme/widgets", "second-pr").await;
    own.assert_code(0);
    assert_eq!(own.json()["workflow"], queued.as_str());
}

/// When no play of the task runs, the newest that ended answers: an event for a wait it left
/// behind is a no-op, any other is refused; neither writes.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn an_event_for_an_ended_play_is_a_noop_past_its_wait_and_refused_otherwise() {
    let ns = TestNamespace::new("resume-ended").await;
    let end = |workflow: String| {
        let ns = &ns;
        async move {
            let done = json!({"metadata": {"labels": {"workflows.argoproj.io/completed": "true"}}});
            ns.workflows()
                .patch(&workflow, &PatchParams::default(), &Patch::Merge(done))
                .await
                .unwrap();
            ns.meta(&workflow).await.resource_version
        }
    };
    let completed = ns.create_play_of("7", "acme/widgets").await;
    ns.stagectl(&["set", "completed", "--workflow", &completed, "--force"])
        .await
        .assert_code(0);
    let before = end(completed.clone()).await;
    let late = resume(&ns, "waiting-pr-approved", "7", "acme/widgets", "late").await;
    late.assert_code(0);
    let outcome: Value = serde_json::from_str(&late.stdout).unwrap();
    assert_eq!(outcome["outcome"], "noop", "{}", late.stdout);
    assert_eq!(outcome["workflow"], completed.as_str());
    assert!(
        outcome["detail"]
            .as_str()
            .unwrap()
            .contains("that wait is over")
    );
    assert_eq!(ns.meta(&completed).await.resource_version, before);

    let failed = failed_play(&ns, "8").await;
    let before = end(failed.clone()).await;
    let refused = resume(&ns, "waiting-ready-for-qa", "8", "acme/widgets", "after").await;
    refused.assert_code(3);
    assert!(
        refused.error_lines()[0]
            .contains(&format!("{failed}: the play has ended at stage \"failed\"")),
        "{}",
        refused.stderr
    );
    assert_eq!(ns.meta(&failed).await.resource_version, before);
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn no_candidate_several_candidates_failed_or_offloaded_plays_are_refused_untouched() {
    let ns = TestNamespace::new("resume-refusals").await;
    let none = resume(&ns, "waiting-pr-created", "404", "acme/widgets", "d").await;
    none.assert_code(4);
    assert!(none.error_lines()[0].contains("no play workflow of task 404"));

    let first = ns.create_play_of("5", "acme/widgets").await;
    let second = ns.create_play_of("5", "acme/widgets").await;
    let several = resume(&ns, "waiting-pr-created", "5", "acme/widgets", "d").await;
    several.assert_code(3);
    assert!(
        several.error_lines()[0].contains(&first) && several.error_lines()[0].contains(&second)
    );

    // A finished workflow is not a candidate.
    let done = json!({"metadata": {"labels": {"workflows.argoproj.io/completed": "true"}}});
    ns.workflows()
        .patch(&second, &PatchParams::default(), &Patch::Merge(done))
        .await
        .unwrap();
    fail(&ns, &first).await;
    let failed = resume(&ns, "waiting-pr-created", "5", "acme/widgets", "d").await;
    failed.assert_code(3);
    assert!(
        failed.error_lines()[0].contains("failed"),
        "{}",
        failed.stderr
    );

    let offloaded = ns.create_play_of("6", "acme/widgets").await;
    assert!(!ns.set_stage(&offloaded, "waiting-pr-created").await);
    let status =
        json!({"status": {"phase": "Running", "offloadNodeStatusVersion": "fnv:784838394"}});
    ns.workflows()
        .patch(&offloaded, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    let run = resume(&ns, "waiting-pr-created", "6", "acme/widgets", "d").await;
    run.assert_code(3);
    assert!(
        run.error_lines()[0].contains("argo resume"),
        "{}",
        run.stderr
    );

    let versions = [
        ns.meta(&first).await.resource_version,
        ns.meta(&offloaded).await.resource_version,
    ];
    for (workflow, before) in [&first, &offloaded].into_iter().zip(versions) {
        let again = resume(
            &ns,
            "waiting-pr-created",
            if workflow == &first { "5" } else { "6" },
            "acme/widgets",
            "d2",
        )
        .await;
        assert_eq!(again.code, 3);
        assert_eq!(
            ns.meta(workflow).await.resource_version,
            before,
            "{workflow} untouched"
        );
    }
}

/// One play, driven as Argo would drive it: at each wait, `set` (skipping the wait when its event
/// came early), then the controller creates the wait's node and the play goes on once it is
/// resumed.
async fn drive_play(ns: Arc<TestNamespace>, workflow: String, jitter: u64) {
    for (i, stage) in WAITS.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis((jitter * (i as u64 + 3)) % 400)).await;
        let skipped = ns.set_stage(&workflow, stage).await;
        tokio::time::sleep(Duration::from_millis((jitter * 7 + i as u64 * 131) % 300)).await;
        ns.controller_reaches_wait(&workflow, stage, WaitNode::after_set(skipped))
            .await;
        if !skipped {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while ns.node(&workflow, stage).await["phase"] != "Succeeded" {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{workflow}: the wait of {stage} was never released"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    ns.stagectl(&["set", "completed", "--workflow", &workflow, "-q"])
        .await
        .assert_code(0);
}

/// 40 plays of different tasks, in two repositories that share task ids; every event comes one
/// to three times (same delivery id), at random moments relative to the plays' own steps. At
/// most 8 deliveries run at once, as a 2-core machine serves them (the plays' own steps are
/// not held back). On a server of its own: its load held the shared one's requests past their
/// timeouts, and a `get --watch` beside it waited over 20 s for the event of a stage change.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn forty_plays_each_wait_released_exactly_once() {
    const TASKS: usize = 20;
    let control_plane = OwnControlPlane::new("forty-plays");
    let kubeconfig = control_plane.start().await;
    let ns = Arc::new(TestNamespace::create_on(&kubeconfig, "forty-plays").await);
    let deliveries_at_once = Arc::new(tokio::sync::Semaphore::new(8));
    let mut plays = Vec::new();
    for task in 0..TASKS {
        for repository in ["acme/widgets", "acme/gadgets"] {
            let workflow = ns.create_play_of(&format!("{task}"), repository).await;
            plays.push((task.to_string(), repository, workflow));
        }
    }
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut deliveries = tokio::task::JoinSet::new();
    for (task, repository, workflow) in &plays {
        tasks.spawn(drive_play(ns.clone(), workflow.clone(), next(997)));
        for stage in WAITS {
            let delivery = format!("{workflow}-{stage}");
            for _ in 0..=next(3) {
                let delay = Duration::from_millis(next(4000));
                let (ns, task, repository, delivery) =
                    (ns.clone(), task.clone(), *repository, delivery.clone());
                let at_once = deliveries_at_once.clone();
                deliveries.spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _turn = at_once.acquire().await.unwrap();
                    let run = resume(&ns, stage, &task, repository, &delivery).await;
                    (delivery, run)
                });
            }
        }
    }
    let mut effects: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(joined) = deliveries.join_next().await {
        let (delivery, run) = joined.unwrap();
        run.assert_code(0);
        let outcome = run.json()["outcome"].as_str().unwrap().to_string();
        *tally.entry(outcome.clone()).or_default() += 1;
        if outcome != "noop" {
            effects.entry(delivery).or_default().push(outcome);
        }
    }
    // The random timing must have produced every case: early, on time, and duplicates.
    for outcome in ["latched", "resumed", "noop"] {
        assert!(
            tally.get(outcome).copied().unwrap_or(0) > 10,
            "{outcome}: {tally:?}"
        );
    }
    eprintln!("resume outcomes over 40 plays: {tally:?}");
    while let Some(driven) = tasks.join_next().await {
        driven.unwrap();
    }
    for (_, _, workflow) in &plays {
        for stage in WAITS {
            let delivery = format!("{workflow}-{stage}");
            assert_eq!(
                effects.get(&delivery).map(Vec::len),
                Some(1),
                "{delivery}: {:?}",
                effects.get(&delivery)
            );
            let node = ns.node(workflow, stage).await;
            match node["type"].as_str().unwrap() {
                "Suspend" => assert_eq!(
                    node["message"],
                    format!("Resumed by stagectl: pull_request (delivery {delivery})"),
                    "released by its own event, not another play's"
                ),
                _ => assert_eq!(effects[&delivery], ["latched"]),
            }
        }
        let record = ns.stagectl(&["get", workflow, "-o", "json"]).await.json();
        assert_eq!(record["stage"], "completed");
        for entry in record["history"].as_array().unwrap() {
            if let Some(by) = entry["waitSatisfiedBy"]["deliveryId"].as_str() {
                assert_eq!(by, format!("{workflow}-{}", entry["to"].as_str().unwrap()));
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn the_stage_resume_and_sensor_accounts_can_do_their_part_and_no_more() {
    use crate::harness::{apply_rbac, service_account_kubeconfig};
    let ns = TestNamespace::new("resume-rbac").await;
    apply_rbac(&ns, false).await;
    let workflow = ns.create_play_of("12", "acme/widgets").await;

    let resumer = service_account_kubeconfig(&ns, "stage-resume").await;
    let args = [
        "resume",
        "--stage",
        "waiting-pr-created",
        "--task-id",
        "12",
        "--repository",
        "acme/widgets",
        "--delivery-id",
        "d-rbac",
        "-o",
        "json",
    ];
    let latched = ns.stagectl_as(&resumer, &args).await;
    latched.assert_code(0);
    assert_eq!(latched.json()["outcome"], "latched");
    assert!(ns.set_stage(&workflow, "waiting-pr-created").await);

    // The sensor's account creates stage-resume workflows and nothing else.
    let sensor = service_account_kubeconfig(&ns, "play-sensor").await;
    let denied = ns
        .stagectl_as(
            &sensor,
            &["set", "waiting-ready-for-qa", "--workflow", &workflow],
        )
        .await;
    denied.assert_code(5);
    let config = crate::harness::config_from_kubeconfig(&sensor).await;
    let client = kube::Client::try_from(config).unwrap();
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(client, &ns.name, &crate::harness::workflow_resource());
    let mut resume_workflow = crate::harness::load_manifest("examples/play-workflow.yaml");
    resume_workflow.metadata.generate_name = None;
    resume_workflow.metadata.name = Some("stage-resume-d-rbac".into());
    api.create(&Default::default(), &resume_workflow)
        .await
        .expect("the sensor may create workflows");
}
