//! set / verify / get / rollback, run as the real binary against the real API server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::harness::{
    MINUTE, OwnControlPlane, TestNamespace, apply_rbac, eventually, resume_args,
    service_account_kubeconfig,
};

const PATH: [&str; 4] = [
    "waiting-pr-created",
    "waiting-ready-for-qa",
    "waiting-pr-approved",
    "completed",
];

fn label<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

fn history_count(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> usize {
    meta.annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("stagectl.dev/history-"))
        .count()
}

async fn events_for(ns: &TestNamespace, workflow: &str) -> Vec<Event> {
    let events: Api<Event> = ns.api();
    let params = ListParams::default().fields(&format!("involvedObject.name={workflow}"));
    events.list(&params).await.unwrap().items
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn a_workflow_walks_the_whole_path_and_repeats_are_noops() {
    let ns = TestNamespace::new("walk").await;
    let workflow = ns.create_play().await;

    for stage in PATH {
        let applied = ns
            .stagectl(&[
                "set",
                stage,
                "--workflow",
                &workflow,
                "--task-id",
                "42",
                "-o",
                "json",
            ])
            .await;
        applied.assert_code(0);
        assert_eq!(applied.json()["outcome"], "applied");
        assert_eq!(
            label(&ns.meta(&workflow).await, "current-stage"),
            Some(stage)
        );

        let before = ns.meta(&workflow).await.resource_version;
        let repeated = ns
            .stagectl(&["set", stage, "--workflow", &workflow, "-o", "json"])
            .await;
        repeated.assert_code(0);
        assert_eq!(repeated.json()["outcome"], "noop");
        assert_eq!(
            ns.meta(&workflow).await.resource_version,
            before,
            "a repeat writes nothing"
        );

        ns.stagectl(&["verify", stage, "--workflow", &workflow, "--task-id", "42"])
            .await
            .assert_code(0);
    }

    let record = ns.stagectl(&["get", &workflow, "-o", "json"]).await;
    record.assert_code(0);
    let history: Vec<(String, String)> = record.json()["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = ["pending"]
        .iter()
        .chain(PATH.iter())
        .zip(PATH.iter())
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(history, expected);
    assert_eq!(
        events_for(&ns, &workflow).await.len(),
        PATH.len(),
        "one Event per change"
    );
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn a_skip_is_refused_and_writes_nothing() {
    let ns = TestNamespace::new("skip-refused").await;
    let workflow = ns.create_play().await;
    let before = ns.meta(&workflow).await.resource_version;

    let skip = ns
        .stagectl(&["set", "waiting-pr-approved", "--workflow", &workflow])
        .await;
    skip.assert_code(3);
    let errors = skip.error_lines();
    assert_eq!(errors.len(), 1, "{}", skip.stderr);
    assert!(
        errors[0].contains("is at \"pending\"")
            && errors[0].contains("needs it at \"waiting-ready-for-qa\""),
        "{}",
        errors[0]
    );
    assert_eq!(ns.meta(&workflow).await.resource_version, before);

    ns.stagectl(&["verify", "waiting-pr-approved", "--workflow", &workflow])
        .await
        .assert_code(7);
    // --force does it, and says so in the history.
    let forced = ns
        .stagectl(&[
            "set",
            "waiting-pr-approved",
            "--workflow",
            &workflow,
            "--force",
            "-o",
            "json",
        ])
        .await;
    forced.assert_code(0);
    assert_eq!(forced.json()["forced"], true);
    let record = ns.stagectl(&["get", &workflow, "-o", "json"]).await.json();
    assert_eq!(record["history"][0]["kind"], "forced");
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn rollback_returns_to_the_previous_stage_and_failed_is_reachable() {
    let ns = TestNamespace::new("rollback").await;
    let workflow = ns.create_play().await;
    for stage in &PATH[..2] {
        ns.stagectl(&["set", stage, "--workflow", &workflow])
            .await
            .assert_code(0);
    }
    let back = ns
        .stagectl(&[
            "rollback",
            "--workflow",
            &workflow,
            "--reason",
            "QA asked again",
            "-o",
            "json",
        ])
        .await;
    back.assert_code(0);
    assert_eq!(back.json()["to"], "waiting-pr-created");

    ns.stagectl(&[
        "set",
        "failed",
        "--workflow",
        &workflow,
        "--reason",
        "agent crashed",
    ])
    .await
    .assert_code(0);
    // From failed, rollback goes back to where it failed.
    let back = ns
        .stagectl(&["rollback", "--workflow", &workflow, "-o", "json"])
        .await;
    back.assert_code(0);
    assert_eq!(back.json()["to"], "waiting-pr-created");
    // Forward is not a rollback.
    ns.stagectl(&["rollback", "--workflow", &workflow, "--to", "completed"])
        .await
        .assert_code(3);

    let history = ns.stagectl(&["get", &workflow, "-o", "json"]).await.json()["history"].clone();
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["set", "set", "rollback", "set", "rollback"]);
    assert_eq!(history[2]["reason"], "QA asked again");
    let reasons: Vec<String> = events_for(&ns, &workflow)
        .await
        .iter()
        .filter_map(|e| e.reason.clone())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| *r == "StageRolledBack").count(),
        2
    );
}

/// 50 workflows; at each step 8 processes run the same `set` at once. Exactly one of them
/// applies it, the others see a no-op, and the workflow records one entry and one Event.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn concurrent_sets_apply_each_step_exactly_once() {
    const WORKFLOWS: usize = 50;
    const RACERS: usize = 8;
    let ns = Arc::new(TestNamespace::new("race").await);
    let mut workflows = Vec::new();
    for _ in 0..WORKFLOWS {
        workflows.push(ns.create_play().await);
    }
    for stage in PATH {
        let mut runs = tokio::task::JoinSet::new();
        for workflow in &workflows {
            for _ in 0..RACERS {
                let (ns, workflow) = (ns.clone(), workflow.clone());
                runs.spawn(async move {
                    let run = ns
                        .stagectl(&["set", stage, "--workflow", &workflow, "-o", "json", "-q"])
                        .await;
                    (workflow, run)
                });
            }
        }
        let mut applied: BTreeMap<String, usize> = BTreeMap::new();
        while let Some(joined) = runs.join_next().await {
            let (workflow, run) = joined.unwrap();
            run.assert_code(0);
            if run.json()["outcome"] == "applied" {
                *applied.entry(workflow).or_default() += 1;
            }
        }
        for workflow in &workflows {
            assert_eq!(applied.get(workflow), Some(&1), "{workflow} at {stage}");
        }
    }
    for workflow in &workflows {
        let meta = ns.meta(workflow).await;
        assert_eq!(label(&meta, "current-stage"), Some("completed"));
        assert_eq!(history_count(&meta), PATH.len(), "{workflow}");
        assert_eq!(
            events_for(&ns, workflow).await.len(),
            PATH.len(),
            "{workflow}"
        );
    }
}

/// A writer that behaves like the Argo controller (read, modify status and one label of its own,
/// update with the resourceVersion, re-read on conflict) runs at 20 updates a second per
/// workflow while stagectl walks every workflow through every stage.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn transitions_and_a_busy_controller_never_lose_each_others_writes() {
    const WORKFLOWS: usize = 10;
    let ns = Arc::new(TestNamespace::new("busy-controller").await);
    let mut workflows = Vec::new();
    for _ in 0..WORKFLOWS {
        workflows.push(ns.create_play().await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let conflicts = Arc::new(AtomicU32::new(0));
    let writes = Arc::new(AtomicU32::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for workflow in &workflows {
        let (ns, workflow) = (ns.clone(), workflow.clone());
        let (stop, conflicts, writes) = (stop.clone(), conflicts.clone(), writes.clone());
        writers.spawn(async move {
            let api = ns.workflows();
            let mut tick = 0u32;
            let mut interval = tokio::time::interval(Duration::from_millis(50));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
            while !stop.load(Ordering::Relaxed) {
                interval.tick().await;
                tick += 1;
                loop {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "{workflow}: the writer ran for 3 minutes"
                    );
                    let mut object = api.get(&workflow).await.unwrap();
                    let labels = object.metadata.labels.get_or_insert_default();
                    labels.insert("controller-tick".into(), tick.to_string());
                    object.data["status"] =
                        json!({"phase": "Running", "message": format!("tick {tick}")});
                    let written = api
                        .replace(&workflow, &PostParams::default(), &object)
                        .await;
                    match written {
                        Ok(_) => {
                            writes.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(kube::Error::Api(status)) if status.code == 409 => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("controller write: {e}"),
                    }
                }
            }
            (workflow, tick)
        });
    }
    // Transitions start once every writer is busy, and must overlap with more of its writes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while writes.load(Ordering::Relaxed) < 3 * WORKFLOWS as u32 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writers did not get going in a minute"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let writes_before = writes.load(Ordering::Relaxed);
    for stage in PATH {
        let mut runs = tokio::task::JoinSet::new();
        for workflow in &workflows {
            let (ns, workflow) = (ns.clone(), workflow.clone());
            runs.spawn(async move {
                ns.stagectl(&["set", stage, "--workflow", &workflow, "-q"])
                    .await
            });
        }
        while let Some(run) = runs.join_next().await {
            run.unwrap().assert_code(0);
        }
    }
    let writes_during = writes.load(Ordering::Relaxed) - writes_before;
    assert!(
        writes_during > 0,
        "the writer wrote while the transitions ran"
    );
    stop.store(true, Ordering::Relaxed);
    while let Some(joined) = writers.join_next().await {
        let (workflow, last_tick) = joined.unwrap();
        let object = ns.workflows().get(&workflow).await.unwrap();
        assert_eq!(
            label(&object.metadata, "current-stage"),
            Some("completed"),
            "{workflow}"
        );
        assert_eq!(
            label(&object.metadata, "controller-tick"),
            Some(last_tick.to_string().as_str())
        );
        assert_eq!(
            object.data["status"]["message"],
            format!("tick {last_tick}")
        );
        assert_eq!(history_count(&object.metadata), PATH.len());
    }
    // The writer, not stagectl, pays for the races: its read-modify-write loses to the patches.
    eprintln!(
        "controller-like writer: {writes_during} writes during the transitions, {} conflicts",
        conflicts.load(Ordering::Relaxed)
    );
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn the_hot_path_of_set_is_one_request() {
    let ns = TestNamespace::new("one-request").await;
    let workflow = ns.create_play().await;
    let before = ns.audited_requests().await.len();

    ns.stagectl(&[
        "set",
        "waiting-pr-created",
        "--workflow",
        &workflow,
        "--task-id",
        "42",
    ])
    .await
    .assert_code(0);

    let requests = ns.audited_requests().await.split_off(before);
    let to_workflows: Vec<_> = requests
        .iter()
        .filter(|r| r.resource == "workflows")
        .collect();
    assert_eq!(to_workflows.len(), 1, "{requests:?}");
    assert_eq!(
        (to_workflows[0].verb.as_str(), to_workflows[0].code),
        ("patch", 200)
    );
    assert_eq!(to_workflows[0].name, workflow);
    // Audit logs tell a stage change from the controller's and kubectl's writes.
    assert_eq!(to_workflows[0].user_agent, stagectl::USER_AGENT);
    // Besides it, only the best-effort Event.
    let others: Vec<_> = requests
        .iter()
        .filter(|r| r.resource != "workflows")
        .map(|r| (r.verb.as_str(), r.resource.as_str()))
        .collect();
    assert_eq!(others, [("create", "events")]);
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn the_least_privilege_role_is_enough_for_every_subcommand() {
    let ns = TestNamespace::new("rbac-enough").await;
    apply_rbac(&ns, false).await;
    let kubeconfig = service_account_kubeconfig(&ns, "stagectl").await;
    let workflow = ns.create_play().await;

    let w = workflow.as_str();
    ns.stagectl_as(&kubeconfig, &["set", "waiting-pr-created", "--workflow", w])
        .await
        .assert_code(0);
    ns.stagectl_as(
        &kubeconfig,
        &["verify", "waiting-pr-created", "--workflow", w],
    )
    .await
    .assert_code(0);
    ns.stagectl_as(
        &kubeconfig,
        &[
            "verify",
            "waiting-ready-for-qa",
            "--workflow",
            w,
            "--wait=2s",
        ],
    )
    .await
    .assert_code(7);
    let listed = ns.stagectl_as(&kubeconfig, &["get", "-o", "name"]).await;
    listed.assert_code(0);
    assert_eq!(
        listed.stdout.trim(),
        format!("workflow.argoproj.io/{workflow}")
    );
    let rolled_back = ns
        .stagectl_as(&kubeconfig, &["rollback", "--workflow", w])
        .await;
    rolled_back.assert_code(0);
    assert!(
        !rolled_back.stderr.contains("could not record"),
        "the account may record Events: {}",
        rolled_back.stderr
    );
    assert_eq!(
        events_for(&ns, &workflow).await.len(),
        2,
        "one Event per change"
    );
}

/// `verify --wait` and `get --watch` follow workflows through one watch with one rule: an
/// account that may read the play but not list or watch it gets exit 5 at once, as a read it
/// may not make would, not a wait until --wait runs out (exit 7) or a watch retried forever.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn a_watch_the_account_may_not_make_ends_at_once_with_the_forbidden_code() {
    let ns = TestNamespace::new("watch-forbidden").await;
    let reader = "reader";
    ns.account_with_workflow_verbs(reader, &["get"]).await;
    let kubeconfig = service_account_kubeconfig(&ns, reader).await;
    let workflow = ns.create_play().await;

    let verify = ns
        .stagectl_as(
            &kubeconfig,
            &["verify", "completed", "--workflow", &workflow, "--wait=5m"],
        )
        .await;
    verify.assert_code(5);
    let errors = verify.error_lines();
    assert_eq!(errors.len(), 1, "{}", verify.stderr);
    assert!(errors[0].contains("cannot list"), "{}", errors[0]);
    let get = ns
        .stagectl_as(&kubeconfig, &["get", &workflow, "--watch"])
        .await;
    get.assert_code(5);
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn without_patch_the_forbidden_code_says_what_to_grant() {
    let ns = TestNamespace::new("rbac-no-patch-cli").await;
    apply_rbac(&ns, true).await;
    let kubeconfig = service_account_kubeconfig(&ns, "stagectl").await;
    let workflow = ns.create_play().await;
    let before = ns.meta(&workflow).await.resource_version;

    let run = ns
        .stagectl_as(
            &kubeconfig,
            &["set", "waiting-pr-created", "--workflow", &workflow],
        )
        .await;
    run.assert_code(5);
    let errors = run.error_lines();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains("cannot patch resource \"workflows\""),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("workflow-templates/rbac.yaml"),
        "{}",
        errors[0]
    );
    assert_eq!(ns.meta(&workflow).await.resource_version, before);
    // Reading is still allowed.
    ns.stagectl_as(&kubeconfig, &["verify", "pending", "--workflow", &workflow])
        .await
        .assert_code(0);
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn get_pages_through_a_thousand_workflows_and_its_output_parses_back() {
    const COUNT: usize = 1000;
    let ns = Arc::new(TestNamespace::new("get-thousand").await);
    let template = crate::harness::load_manifest("examples/play-workflow.yaml");
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..COUNT {
        let (ns, mut workflow) = (ns.clone(), template.clone());
        creates.spawn(async move {
            workflow.metadata.generate_name = None;
            workflow.metadata.name = Some(format!("play-{i:04}"));
            ns.workflows()
                .create(&PostParams::default(), &workflow)
                .await
                .unwrap();
        });
        if creates.len() >= 16 {
            creates.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(created) = creates.join_next().await {
        created.unwrap();
    }
    let expected: Vec<String> = (0..COUNT).map(|i| format!("play-{i:04}")).collect();

    let json = ns
        .stagectl(&["get", "-o", "json", "--chunk-size", "64"])
        .await;
    json.assert_code(0);
    let names = json.item_names();
    assert_eq!(
        names, expected,
        "every workflow once, in order, across 16 pages"
    );

    let yaml = ns
        .stagectl(&["get", "-o", "yaml", "--chunk-size", "300"])
        .await;
    yaml.assert_code(0);
    let parsed: serde_json::Value = serde_yaml::from_str(&yaml.stdout).unwrap();
    assert_eq!(parsed, json.json(), "YAML and JSON carry the same records");

    let pages = ns
        .audited_requests()
        .await
        .iter()
        .filter(|r| r.verb == "list" && r.resource == "workflows")
        .count();
    assert_eq!(pages, 16 + 4, "16 pages of 64 and 4 of 300");

    let table = ns.stagectl(&["get", "--task-id", "42"]).await;
    table.assert_code(0);
    assert_eq!(table.stdout.lines().count(), COUNT + 1);
    assert!(table.stdout.starts_with("NAME "));
}

/// The control plane stops in the middle of a batch of sets and comes back: every set either
/// finishes once it is back or gives up having written nothing; no workflow is left between.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn sets_survive_a_control_plane_restart() {
    const WORKFLOWS: usize = 20;
    let control_plane = OwnControlPlane::new("restart-mid-batch");
    let kubeconfig = control_plane.start().await;
    let ns = Arc::new(TestNamespace::create_on(&kubeconfig, "restart-mid-batch").await);
    let mut workflows = Vec::new();
    for _ in 0..WORKFLOWS {
        workflows.push(ns.create_play().await);
    }
    let started = Arc::new(AtomicU32::new(0));
    let mut runs = tokio::task::JoinSet::new();
    for (i, workflow) in workflows.iter().enumerate() {
        let (ns, workflow, started) = (ns.clone(), workflow.clone(), started.clone());
        runs.spawn(async move {
            // Spread over the outage: some before the stop, most during it.
            tokio::time::sleep(Duration::from_millis(50 * i as u64)).await;
            started.fetch_add(1, Ordering::SeqCst);
            let run = ns
                .stagectl(&[
                    "set",
                    "waiting-pr-created",
                    "--workflow",
                    &workflow,
                    "--timeout",
                    "90s",
                    "-o",
                    "json",
                ])
                .await;
            (workflow, run)
        });
    }
    // The server goes once the first sets are under way, and comes back once every set has
    // started against it stopped.
    let have_started = |count: u32| {
        let started = started.clone();
        async move || (started.load(Ordering::SeqCst) >= count).then_some(())
    };
    eventually("the first sets start", MINUTE, have_started(3)).await;
    control_plane.stop().await;
    let all = WORKFLOWS as u32;
    eventually("every set starts", MINUTE, have_started(all)).await;
    control_plane.start().await;

    let mut completed = 0;
    while let Some(joined) = runs.join_next().await {
        let (workflow, run) = joined.unwrap();
        let stage = label(&ns.meta(&workflow).await, "current-stage").map(str::to_string);
        match run.code {
            0 => {
                completed += 1;
                assert_eq!(stage.as_deref(), Some("waiting-pr-created"), "{workflow}");
            }
            6 => assert_eq!(
                stage.as_deref(),
                Some("pending"),
                "{workflow} gave up but changed"
            ),
            other => panic!("{workflow}: exit {other}: {}", run.stderr),
        }
    }
    assert_eq!(
        completed, WORKFLOWS,
        "the outage was shorter than --timeout"
    );
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn history_stays_bounded_and_keeps_the_newest_changes() {
    let ns = TestNamespace::new("history-bound").await;
    let workflow = ns.create_play().await;
    for round in 0..13 {
        let reason = format!("round {round}");
        ns.stagectl(&[
            "set",
            "waiting-pr-created",
            "--workflow",
            &workflow,
            "--reason",
            &reason,
        ])
        .await
        .assert_code(0);
        ns.stagectl(&["rollback", "--workflow", &workflow, "--reason", &reason])
            .await
            .assert_code(0);
    }
    let meta = ns.meta(&workflow).await;
    assert_eq!(history_count(&meta), 20, "26 changes, the newest 20 kept");
    let record = ns.stagectl(&["get", &workflow, "-o", "json"]).await.json();
    let history = record["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["reason"], "round 12");
    assert_eq!(history.first().unwrap()["reason"], "round 3");
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn a_template_can_pass_workflow_and_namespace_through_the_environment() {
    let ns = TestNamespace::new("env-vars").await;
    let workflow = ns.create_play().await;
    let mut command = crate::harness::stagectl_command();
    command
        .arg("--kubeconfig")
        .arg(&ns.kubeconfig)
        .args(["set", "waiting-pr-created"])
        .env("STAGECTL_WORKFLOW", &workflow)
        .env("STAGECTL_NAMESPACE", &ns.name);
    crate::harness::Run::of(command).await.assert_code(0);
    assert_eq!(
        label(&ns.meta(&workflow).await, "current-stage"),
        Some("waiting-pr-created")
    );
}

/// `get --watch`: the list, then a line per change of what get shows — each stage change once,
/// and nothing for the controller's status writes; a play sent back shows its next pass.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn get_watch_prints_a_line_per_stage_change_and_none_for_status_writes() {
    use tokio::io::AsyncBufReadExt;
    let ns = TestNamespace::new("get-watch").await;
    let workflow = ns.create_play().await;
    let mut command = crate::harness::stagectl_command();
    command
        .arg("--kubeconfig")
        .arg(&ns.kubeconfig)
        .args(["-n", &ns.name, "get", "--watch"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut watch = command.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("a line within 20s")
            .unwrap()
            .expect("the watch goes on")
    };
    assert!(next_line().await.starts_with("NAME "));
    let row = next_line().await;
    assert!(
        row.starts_with(&workflow) && row.contains(" pending "),
        "{row}"
    );

    for stage in ["waiting-pr-created", "waiting-ready-for-qa"] {
        // A status write first, as the controller makes many: no line for it.
        let status = json!({"status": {"phase": "Running", "message": format!("before {stage}")}});
        ns.workflows()
            .patch(
                &workflow,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(status),
            )
            .await
            .unwrap();
        ns.stagectl(&["set", stage, "--workflow", &workflow, "-q"])
            .await
            .assert_code(0);
        let row = next_line().await;
        assert!(
            row.starts_with(&workflow)
                && row.contains(&format!(" {stage} "))
                && row.contains(" 1/3 "),
            "{row}"
        );
    }

    // Tess's change request comes early, and the step entering her wait sends the play back.
    ns.change_request_sends_back(&workflow, "42", 1).await;
    let row = next_line().await;
    assert!(
        row.starts_with(&workflow) && row.contains(" pending ") && row.contains(" 2/3 "),
        "{row}"
    );
}

/// A reader that went away (`stagectl … | head`) stops the printing, not the command: the
/// files a step's outputs come from are written, and the exit code is the outcome's.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn a_closed_stdout_stops_the_printing_not_the_command() {
    let ns = TestNamespace::new("closed-stdout").await;
    let workflow = ns.create_play().await;
    let skip_wait = ns.scratch("skip-wait");
    ns.stagectl_to_closed_stdout(&[
        "set",
        "waiting-pr-created",
        "--workflow",
        &workflow,
        "--skip-wait-file",
        skip_wait.to_str().unwrap(),
    ])
    .await
    .assert_code(0);
    assert_eq!(std::fs::read_to_string(&skip_wait).unwrap(), "false");
    assert_eq!(
        label(&ns.meta(&workflow).await, "current-stage"),
        Some("waiting-pr-created")
    );

    // An event before its wait: latched, and the outcome file says so.
    let outcome = ns.scratch("outcome");
    ns.stagectl_to_closed_stdout(&resume_args(
        "waiting-ready-for-qa",
        "closed-stdout-1",
        &["--outcome-file", outcome.to_str().unwrap()],
    ))
    .await
    .assert_code(0);
    assert_eq!(std::fs::read_to_string(&outcome).unwrap(), "latched");

    // A failure stays one, whoever reads stdout.
    let refused = ns
        .stagectl_to_closed_stdout(&["set", "completed", "--workflow", &workflow])
        .await;
    refused.assert_code(3);
    assert_eq!(refused.error_lines().len(), 1, "{}", refused.stderr);
    ns.stagectl_to_closed_stdout(&["get", "-o", "wide"])
        .await
        .assert_code(0);
}
