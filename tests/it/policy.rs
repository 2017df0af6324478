//! The stage-machine policy of workflow-templates/ on the real API server: every move of the
//! shared table (tests/vectors/stage-moves.json) admitted or refused as the table says, for
//! stagectl's accounts and for any other writer; identities fixed once set; Argo's controller
//! never evaluated; and stagectl's own steps (set, rollback, resume) working under it.

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::harness::WaitNode;
use crate::harness::{
    StageMachinePolicy, TestNamespace, apply_rbac, config_from_kubeconfig, load_manifest,
    repo_path, resume_args, service_account_kubeconfig, workflow_resource,
};

/// A namespace of the test's own with the accounts of rbac.yaml and the policy bound to it.
async fn bound_namespace(test: &str, stages: Option<&str>) -> (TestNamespace, StageMachinePolicy) {
    let ns = TestNamespace::new(test).await;
    apply_rbac(&ns, false).await;
    let policy = StageMachinePolicy::bind_with_stages(&ns, stages).await;
    (ns, policy)
}

async fn workflows_as(ns: &TestNamespace, account: &str) -> Api<DynamicObject> {
    let kubeconfig = service_account_kubeconfig(ns, account).await;
    let client = kube::Client::try_from(config_from_kubeconfig(&kubeconfig).await).unwrap();
    Api::namespaced_with(client, &ns.name, &workflow_resource())
}

/// A play at `from` ("" for none), created by an operator of the break-glass group, with the
/// stage it failed at when given.
async fn play_at(operator: &Api<DynamicObject>, from: &str, failed_at: &str) -> String {
    let mut play = load_manifest("examples/play-workflow.yaml");
    let labels = play.metadata.labels.as_mut().unwrap();
    if from.is_empty() {
        labels.remove("current-stage");
    } else {
        labels.insert("current-stage".into(), from.into());
    }
    if !failed_at.is_empty() {
        play.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("stagectl.dev/failed-at".into(), failed_at.into());
    }
    operator
        .create(&PostParams::default(), &play)
        .await
        .unwrap_or_else(|e| panic!("create a play at {from:?}: {e}"))
        .metadata
        .name
        .unwrap()
}

/// The move as stagectl writes it: the stage label, and into `failed` the stage it leaves.
fn move_patch(from: &str, to: &str) -> Patch<Value> {
    let stage = "/metadata/labels/current-stage";
    let mut ops = match (from.is_empty(), to.is_empty()) {
        (true, true) => vec![],
        (false, true) => vec![json!({"op": "remove", "path": stage})],
        _ => vec![json!({"op": "add", "path": stage, "value": to})],
    };
    if to == "failed" && from != "failed" {
        ops.push(json!({"op": "add", "path": "/metadata/annotations/stagectl.dev~1failed-at", "value": from}));
    }
    Patch::Json(serde_json::from_value(Value::Array(ops)).unwrap())
}

/// 200 when admitted, else the refusal's code, which must be the policy's.
fn admitted_or<T>(result: kube::Result<T>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(kube::Error::Api(status)) => {
            assert!(
                status.message.contains("denied request"),
                "refused, but not by the policy: {}",
                status.message
            );
            status.code
        }
        Err(other) => panic!("{other}"),
    }
}

async fn try_move(api: &Api<DynamicObject>, play: &str, from: &str, to: &str) -> u16 {
    admitted_or(
        api.patch(play, &PatchParams::default(), &move_patch(from, to))
            .await,
    )
}

fn names(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The shared table of moves (tests/vectors/stage-moves.json).
fn stage_moves() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo_path("tests/vectors/stage-moves.json")).unwrap(),
    )
    .unwrap()
}

/// Who writes plays: an operator of the break-glass group, stagectl's stage step, and a person
/// with kubectl and every RBAC right, outside the break-glass group.
async fn writers(ns: &TestNamespace) -> [Api<DynamicObject>; 3] {
    let operator = Api::namespaced_with(
        StageMachinePolicy::break_glass_client(ns),
        &ns.name,
        &workflow_resource(),
    );
    [
        operator,
        workflows_as(ns, "stagectl-stage").await,
        ns.workflows(),
    ]
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn every_move_of_the_table_is_admitted_for_stagectl_and_refused_for_every_other_writer() {
    let mut checked = 0;
    for pipeline in stage_moves()["pipelines"].as_array().unwrap() {
        let stages = names(&pipeline["stages"]).join(",");
        let (ns, _policy) = bound_namespace("policy-table", Some(&stages)).await;
        let [operator, stagectl, admin] = writers(&ns).await;
        let targets = names(&pipeline["targets"]);

        let created_legal = &pipeline["moves"][0];
        assert_eq!(created_legal["from"], "");
        for target in &targets {
            let mut play = load_manifest("examples/play-workflow.yaml");
            let labels = play.metadata.labels.as_mut().unwrap();
            labels.remove("current-stage");
            if !target.is_empty() {
                labels.insert("current-stage".into(), target.clone());
            }
            let created = admitted_or(admin.create(&PostParams::default(), &play).await);
            let legal = names(&created_legal["legal"]).contains(target);
            assert_eq!(
                created,
                if legal { 200 } else { 403 },
                "created at {target:?}"
            );
        }

        for row in pipeline["moves"].as_array().unwrap() {
            let from = row["from"].as_str().unwrap();
            let failed_at = row["failedAt"].as_str().unwrap();
            let legal = names(&row["legal"]);
            for to in &targets {
                let play = play_at(&operator, from, failed_at).await;
                let is_legal = legal.contains(to);
                // Anyone may give a workflow its first stage (creating a play), or write
                // nothing new; every other change is stagectl's.
                let by_anyone = from == to || (from.is_empty() && is_legal);
                assert_eq!(
                    try_move(&admin, &play, from, to).await,
                    if by_anyone { 200 } else { 403 },
                    "another writer: {from:?} -> {to:?} (failed at {failed_at:?})"
                );
                assert_eq!(
                    try_move(&stagectl, &play, from, to).await,
                    if is_legal { 200 } else { 403 },
                    "stagectl: {from:?} -> {to:?} (failed at {failed_at:?})"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 100, "{checked} moves");
}

/// The moves that change a play's pass, or keep it, from the shared table (its `passes`): the
/// policy admits a pass changed only with a back edge of the definition, by one, within the
/// limit, and only for stagectl; the pass kept otherwise.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn a_pass_changes_only_with_a_back_edge_by_one_within_the_limit() {
    let vectors = stage_moves();
    let table = &vectors["passes"];
    let (ns, _policy) = bound_namespace("policy-passes", None).await;
    let [operator, stagectl, admin] = writers(&ns).await;
    let pass_key = "/metadata/annotations/stagectl.dev~1pass";
    for row in table["moves"].as_array().unwrap() {
        let (from, to) = (row["from"].as_str().unwrap(), row["to"].as_str().unwrap());
        let (before, after) = (
            row["pass"][0].as_u64().unwrap(),
            row["pass"][1].as_u64().unwrap(),
        );
        // A failed play failed at the stage the row's rollback returns it to.
        let play = play_at(&operator, from, if from == "failed" { to } else { "" }).await;
        let begun = json!([
            {"op": "add", "path": pass_key, "value": before.to_string()},
            {"op": "add", "path": "/metadata/annotations/stagectl.dev~1pass-began", "value": "2026-12-07T10:00:00Z"},
        ]);
        operator
            .patch(
                &play,
                &PatchParams::default(),
                &Patch::<Value>::Json(serde_json::from_value(begun).unwrap()),
            )
            .await
            .unwrap();
        let Patch::Json(mut ops) = move_patch(from, to) else {
            unreachable!()
        };
        if after != before {
            let next = json!([
                {"op": "replace", "path": pass_key, "value": after.to_string()},
                {"op": "replace", "path": "/metadata/annotations/stagectl.dev~1pass-began", "value": "2026-12-07T11:00:00Z"},
            ]);
            ops.0
                .extend(serde_json::from_value::<json_patch::Patch>(next).unwrap().0);
        }
        let change = Patch::<Value>::Json(ops);
        let legal = row["legal"].as_bool().unwrap();
        let code = |result| admitted_or(result);
        assert_eq!(
            code(admin.patch(&play, &PatchParams::default(), &change).await),
            if from == to && after == before {
                200
            } else {
                403
            },
            "another writer: {row}"
        );
        let answer = stagectl
            .patch(&play, &PatchParams::default(), &change)
            .await;
        let message = match &answer {
            Err(kube::Error::Api(status)) => status.message.clone(),
            _ => String::new(),
        };
        assert_eq!(
            code(answer),
            if legal { 200 } else { 403 },
            "stagectl: {row}: {message}"
        );
        if !legal && after != before && from != to && row["why"] != "past the pass limit" {
            assert!(
                message.contains("stagectl.dev/pass") || message.contains("not a move"),
                "{message}"
            );
        }
    }
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn kubectl_label_by_hand_is_refused_with_the_moves_that_are_legal() {
    let (ns, _policy) = bound_namespace("policy-kubectl", None).await;
    let play = ns.create_play().await;
    let output = tokio::process::Command::new(repo_path("tests/controlplane/bin/kubectl"))
        .env("KUBECONFIG", &ns.kubeconfig)
        .args(["-n", &ns.name, "label", "workflow", &play])
        .args(["current-stage=completed", "--overwrite"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("may not write current-stage or stagectl.dev/ annotations")
            && stderr.contains("stagectl-stage, stage-resume, stagectl-reconcile, stagectl")
            && stderr.contains("break-glass group stagectl:break-glass"),
        "{stderr}"
    );
    assert_eq!(
        ns.meta(&play).await.labels.unwrap()["current-stage"],
        "pending"
    );
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn task_id_repository_and_type_cannot_change_once_set_even_by_stagectl() {
    let (ns, _policy) = bound_namespace("policy-identity", None).await;
    let stagectl = workflows_as(&ns, "stagectl-stage").await;
    let play = ns.create_play().await;
    for patch in [
        json!({"metadata": {"labels": {"task-id": "43"}}}),
        json!({"metadata": {"labels": {"task-id": null}}}),
        json!({"metadata": {"labels": {"repository": "acme.other"}}}),
        json!({"metadata": {"labels": {"workflow-type": "something-else"}}}),
        json!({"metadata": {"annotations": {"stagectl.dev/repository": "acme/other"}}}),
    ] {
        let result = stagectl
            .patch(&play, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        let Err(kube::Error::Api(status)) = result else {
            panic!("admitted: {patch}")
        };
        assert!(
            status.message.contains("cannot change once set"),
            "{patch}: {}",
            status.message
        );
    }
    // A play without a task yet may be given one, as stagectl's start step does.
    let mut without = load_manifest("examples/play-workflow.yaml");
    without.metadata.labels.as_mut().unwrap().remove("task-id");
    let without = ns
        .workflows()
        .create(&PostParams::default(), &without)
        .await
        .unwrap()
        .metadata
        .name
        .unwrap();
    let add = json!({"metadata": {"labels": {"task-id": "44"}}});
    stagectl
        .patch(&without, &PatchParams::default(), &Patch::Merge(&add))
        .await
        .expect("a task id on a play that had none");
}

/// Argo's controller writes status and its own labels on every step of every play: none of it
/// touches what the policy guards, so matchConditions admit it without evaluating the policy.
/// Shown with a stage order the policy cannot evaluate: every request evaluated is refused, and
/// the controller's writes still go through.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn the_controllers_writes_are_admitted_without_evaluating_the_policy() {
    let (ns, policy) = bound_namespace("policy-controller", None).await;
    let play = ns.create_play().await;
    let mut broken = policy.read(&ns, "ValidatingAdmissionPolicy").await;
    // A key no play has: the expression fails when evaluated, never before.
    broken.data["spec"]["variables"][0]["expression"] =
        json!("[string(object.metadata.labels['stagectl.dev/no-such-label'])]");
    StageMachinePolicy::apply(&ns, &broken).await;
    // The server reads policies through an informer: once it has the broken one, a play
    // created at its first stage, admitted before, is refused.
    let probe = load_manifest("examples/play-workflow.yaml");
    // An expression that cannot be evaluated is refused with 422.
    StageMachinePolicy::until_refused(&ns, &probe, 422, "the broken policy is in use").await;

    ns.controller_reaches_wait(&play, "waiting-pr-created", WaitNode::Suspend)
        .await;
    let labels = json!({"metadata": {"labels": {
        "workflows.argoproj.io/phase": "Running",
        "workflows.argoproj.io/completed": "false",
    }}});
    ns.workflows()
        .patch(&play, &PatchParams::default(), &Patch::Merge(labels))
        .await
        .expect("the controller's labels");
    let mut whole = ns.workflows().get(&play).await.unwrap();
    whole.data["status"]["phase"] = json!("Succeeded");
    ns.workflows()
        .replace(&play, &PostParams::default(), &whole)
        .await
        .expect("the controller's update of the whole object");
    assert_eq!(
        ns.node(&play, "waiting-pr-created").await["phase"],
        "Running"
    );
}

/// The play's own steps under the policy: each stage change by the stage step's account, a
/// forced move refused with exit 3 and the policy's words, failed and back, a resume by
/// stage-resume's account; and stagectl run by an account that is not stagectl's refused.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn stagectls_steps_work_under_the_policy_and_a_refusal_exits_3_with_its_message() {
    let (ns, _policy) = bound_namespace("policy-stagectl", None).await;
    let stage_step = service_account_kubeconfig(&ns, "stagectl-stage").await;
    let resumer = service_account_kubeconfig(&ns, "stage-resume").await;
    let play = ns.create_play().await;

    let forced = ns
        .stagectl_as(
            &stage_step,
            &["set", "completed", "--force", "--workflow", &play],
        )
        .await;
    forced.assert_code(3);
    assert!(
        forced.stderr.contains("stage-machine policy refused")
            && forced
                .stderr
                .contains("from pending it may go to waiting-pr-created, failed"),
        "{}",
        forced.stderr
    );

    // An operator of the break-glass group may (the admin, impersonating one).
    let glass = ns
        .stagectl(&[
            "--as",
            "ops-alice",
            "--as-group",
            StageMachinePolicy::BREAK_GLASS_GROUP,
            "--as-group",
            "system:masters",
            "set",
            "waiting-pr-approved",
            "--force",
            "--workflow",
            &play,
            "-o",
            "json",
        ])
        .await;
    glass.assert_code(0);
    assert_eq!(glass.json()["forced"], true);
    ns.stagectl(&[
        "--as",
        "ops-alice",
        "--as-group",
        StageMachinePolicy::BREAK_GLASS_GROUP,
        "--as-group",
        "system:masters",
        "set",
        "pending",
        "--force",
        "--workflow",
        &play,
    ])
    .await
    .assert_code(0);

    let by_admin = ns
        .stagectl(&["set", "waiting-pr-created", "--workflow", &play])
        .await;
    by_admin.assert_code(3);
    assert!(
        by_admin.stderr.contains("may not write current-stage"),
        "{}",
        by_admin.stderr
    );

    ns.stagectl_as(
        &stage_step,
        &["set", "waiting-pr-created", "--workflow", &play],
    )
    .await
    .assert_code(0);
    ns.controller_reaches_wait(&play, "waiting-pr-created", WaitNode::Suspend)
        .await;
    let resumed = ns
        .stagectl_as(
            &resumer,
            &resume_args("waiting-pr-created", "d-policy", &["-o", "json"]),
        )
        .await;
    resumed.assert_code(0);
    assert_eq!(resumed.json()["outcome"], "resumed");
    // An early event for the next wait, latched by stage-resume's account.
    let latched = ns
        .stagectl_as(
            &resumer,
            &resume_args("waiting-ready-for-qa", "d-early", &["-o", "json"]),
        )
        .await;
    latched.assert_code(0);
    assert_eq!(latched.json()["outcome"], "latched");

    ns.stagectl_as(&stage_step, &["set", "failed", "--workflow", &play])
        .await
        .assert_code(0);
    assert_eq!(
        ns.meta(&play).await.annotations.unwrap()["stagectl.dev/failed-at"],
        "waiting-pr-created"
    );
    let back = ns
        .stagectl_as(
            &stage_step,
            &["rollback", "--workflow", &play, "-o", "json"],
        )
        .await;
    back.assert_code(0);
    assert_eq!(back.json()["to"], "waiting-pr-created");
    let once_more = ns
        .stagectl_as(
            &stage_step,
            &["rollback", "--workflow", &play, "-o", "json"],
        )
        .await;
    once_more.assert_code(0);
    assert_eq!(once_more.json()["to"], "pending");
    for stage in ["waiting-pr-created", "waiting-ready-for-qa"] {
        ns.stagectl_as(&stage_step, &["set", stage, "--workflow", &play])
            .await
            .assert_code(0);
    }
    assert_eq!(
        ns.stagectl(&["get", &play, "-o", "json"]).await.json()["stage"],
        "waiting-ready-for-qa"
    );
}

/// What a GitOps tool does when it prunes and re-creates the binding: the binding is gone for a
/// while, then back. The policy has no parameters, so nothing is lost meanwhile (a ConfigMap
/// parameter was lost for good: kubernetes#130887); once the binding is back, stagectl's writes
/// are admitted and the moves it may not make are refused, as before.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn a_binding_deleted_and_created_again_enforces_as_before_and_denies_no_legal_write() {
    let (ns, policy) = bound_namespace("policy-gitops", None).await;
    let stage_step = service_account_kubeconfig(&ns, "stagectl-stage").await;
    let play = ns.create_play().await;
    let binding = policy.read(&ns, "ValidatingAdmissionPolicyBinding").await;
    for stage in ["waiting-pr-created", "waiting-ready-for-qa"] {
        policy.unbind(&ns).await;
        // Unbound for longer than the server's refresh of policy parameters (one second).
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        StageMachinePolicy::apply(&ns, &binding).await;
        policy.in_force(&ns, "completed").await;
        ns.stagectl_as(&stage_step, &["set", stage, "--workflow", &play])
            .await
            .assert_code(0);
        let forced = ns
            .stagectl_as(
                &stage_step,
                &["set", "completed", "--force", "--workflow", &play],
            )
            .await;
        forced.assert_code(3);
        assert!(
            forced.stderr.contains("stage-machine policy refused"),
            "back at {stage}: {}",
            forced.stderr
        );
    }
}
