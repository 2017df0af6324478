//! What stagectl's design relies on, shown on the real API server with Argo's full CRDs.

use kube::Client;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::{
    OwnControlPlane, TestNamespace, api_status, load_manifest, workflow_resource,
};

const EXAMPLE: &str = "examples/play-workflow.yaml";

fn json_patch(ops: serde_json::Value) -> Patch<()> {
    Patch::Json(serde_json::from_value(ops).expect("valid JSON Patch"))
}

fn stage_of(workflow: &kube::api::DynamicObject) -> &str {
    workflow.metadata.labels.as_ref().unwrap()["current-stage"].as_str()
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn example_play_workflow_is_accepted_by_the_full_crd() {
    let ns = TestNamespace::new("example-accepted").await;
    let created = ns.create_workflow_from(EXAMPLE).await;

    let stored = ns
        .workflows()
        .get(created.metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(stage_of(&stored), "pending");
    assert_eq!(
        stored.metadata.labels.as_ref().unwrap()["workflow-type"],
        "play-orchestration"
    );
    // The full CRD keeps the templates (the minimal one would prune them to nothing).
    let templates = stored.data["spec"]["templates"]
        .as_array()
        .expect("templates kept");
    assert_eq!(templates.len(), 4);
    assert_eq!(templates[3]["inputs"]["parameters"][0]["name"], "stage");
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn workflow_that_breaks_the_schema_is_rejected_and_not_stored() {
    let ns = TestNamespace::new("schema-rejects").await;
    let mut invalid = load_manifest(EXAMPLE);
    invalid.data["spec"]["templates"][0]["dag"]["tasks"] = json!("not a list");
    invalid.data["spec"]["entrypoint"] = json!(42);

    let status = api_status(
        ns.workflows()
            .create(&PostParams::default(), &invalid)
            .await,
    );
    assert_eq!(status, 422);
    assert!(
        ns.workflows()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn json_patch_whose_test_fails_is_rejected_and_changes_nothing() {
    let ns = TestNamespace::new("patch-test-fails").await;
    let created = ns.create_workflow_from(EXAMPLE).await;
    let name = created.metadata.name.as_deref().unwrap();

    let result = ns
        .workflows()
        .patch(
            name,
            &PatchParams::default(),
            &json_patch(json!([
                {"op": "test", "path": "/metadata/labels/current-stage", "value": "waiting-pr-created"},
                {"op": "replace", "path": "/metadata/labels/current-stage", "value": "waiting-ready-for-qa"},
            ])),
        )
        .await;
    assert_eq!(api_status(result), 422);

    let stored = ns.workflows().get(name).await.unwrap();
    assert_eq!(stage_of(&stored), "pending");
    assert_eq!(
        stored.metadata.resource_version,
        created.metadata.resource_version
    );
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn json_patch_applies_all_of_its_operations_or_none() {
    let ns = TestNamespace::new("patch-atomic").await;
    let created = ns.create_workflow_from(EXAMPLE).await;
    let name = created.metadata.name.as_deref().unwrap();

    // The test passes but a later operation fails: nothing of it may land.
    let partly_invalid = ns
        .workflows()
        .patch(
            name,
            &PatchParams::default(),
            &json_patch(json!([
                {"op": "test", "path": "/metadata/labels/current-stage", "value": "pending"},
                {"op": "replace", "path": "/metadata/labels/current-stage", "value": "waiting-pr-created"},
                {"op": "remove", "path": "/metadata/labels/no-such-label"},
            ])),
        )
        .await;
    assert_eq!(api_status(partly_invalid), 422);
    let unchanged = ns.workflows().get(name).await.unwrap();
    assert_eq!(stage_of(&unchanged), "pending");
    assert_eq!(
        unchanged.metadata.resource_version,
        created.metadata.resource_version
    );

    // The test passes and every operation is valid: all of it lands in one write.
    let applied = ns
        .workflows()
        .patch(
            name,
            &PatchParams::default(),
            &json_patch(json!([
                {"op": "test", "path": "/metadata/labels/current-stage", "value": "pending"},
                {"op": "replace", "path": "/metadata/labels/current-stage", "value": "waiting-pr-created"},
                {"op": "add", "path": "/metadata/labels/updated-at", "value": "1790000000"},
                {"op": "add", "path": "/metadata/annotations/stagectl.dev~1note", "value": "one write"},
            ])),
        )
        .await
        .unwrap();
    assert_eq!(stage_of(&applied), "waiting-pr-created");
    let stored = ns.workflows().get(name).await.unwrap();
    assert_eq!(
        stored.metadata.resource_version,
        applied.metadata.resource_version
    );
    assert_eq!(
        stored.metadata.labels.as_ref().unwrap()["updated-at"],
        "1790000000"
    );
    assert_eq!(
        stored.metadata.annotations.as_ref().unwrap()["stagectl.dev/note"],
        "one write"
    );
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn merge_patch_with_a_stale_resource_version_conflicts() {
    let ns = TestNamespace::new("merge-stale-rv").await;
    let created = ns.create_workflow_from(EXAMPLE).await;
    let name = created.metadata.name.as_deref().unwrap();
    let stale_version = created.metadata.resource_version.clone().unwrap();

    // Another writer (the Argo controller, say) changes the object in between.
    let changed = ns
        .workflows()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"other-writer": "was-here"}}})),
        )
        .await
        .unwrap();

    let merge_with = |resource_version: String| {
        Patch::Merge(json!({"metadata": {
            "resourceVersion": resource_version,
            "labels": {"current-stage": "waiting-pr-created"},
        }}))
    };
    let stale = ns
        .workflows()
        .patch(name, &PatchParams::default(), &merge_with(stale_version))
        .await;
    assert_eq!(api_status(stale), 409);
    assert_eq!(
        stage_of(&ns.workflows().get(name).await.unwrap()),
        "pending"
    );

    let current = changed.metadata.resource_version.clone().unwrap();
    let applied = ns
        .workflows()
        .patch(name, &PatchParams::default(), &merge_with(current))
        .await
        .unwrap();
    assert_eq!(stage_of(&applied), "waiting-pr-created");
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn service_account_without_patch_on_workflows_is_forbidden() {
    let ns = TestNamespace::new("rbac-no-patch").await;
    let created = ns.create_workflow_from(EXAMPLE).await;
    let name = created.metadata.name.as_deref().unwrap();

    let account = "read-only";
    ns.account_with_workflow_verbs(account, &["get", "list", "watch"])
        .await;

    let token = ns.service_account_token(account).await;

    let mut config = ns.config.clone();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let as_account: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        Client::try_from(config).unwrap(),
        &ns.name,
        &workflow_resource(),
    );

    // The token is real and authenticates: the account may read...
    let read = as_account.get(name).await.expect("the Role allows get");
    assert_eq!(stage_of(&read), "pending");
    // ...but not write.
    let patch = Patch::Merge(json!({"metadata": {"labels": {"current-stage": "completed"}}}));
    assert_eq!(
        api_status(
            as_account
                .patch(name, &PatchParams::default(), &patch)
                .await
        ),
        403
    );
    assert_eq!(
        stage_of(&ns.workflows().get(name).await.unwrap()),
        "pending"
    );
}

/// A restarted server never moves to another port, as a Service's address never does: its
/// clients (a running step, a Sensor, the controller) keep the address they were given. Its
/// ports lie below the kernel's range for outgoing connections, which no client's connection
/// can take while it is down (a soak's API server once came back on another port after one
/// had); a port taken all the same is waited for, then the start fails rather than move.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn a_restarted_server_keeps_its_port_or_does_not_start() {
    let control_plane = OwnControlPlane::new("keeps-port");
    let kubeconfig = control_plane.start().await;
    let address = crate::harness::config_from_kubeconfig(&kubeconfig)
        .await
        .cluster_url
        .to_string();
    let port: u16 = address
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let outgoing_from: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        port < outgoing_from,
        "port {port} is in the range of outgoing connections ({range})"
    );

    control_plane.stop().await;
    let taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|err| {
        let holders = std::process::Command::new("ss")
            .args(["-tanp", &format!("sport = :{port}")])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        panic!("port {port} after the stop: {err}; sockets on it:\n{holders}")
    });
    assert!(
        !control_plane.start_succeeds().await,
        "started while its port was taken"
    );
    assert!(
        control_plane
            .log()
            .contains(&format!("port {port}, this instance's"))
    );
    drop(taken);

    let restarted = control_plane.start().await;
    let again = crate::harness::config_from_kubeconfig(&restarted)
        .await
        .cluster_url
        .to_string();
    assert_eq!(again, address, "the restarted server moved");
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn restarted_server_keeps_its_objects() {
    let control_plane = OwnControlPlane::new("restart-keeps-data");
    let kubeconfig = control_plane.start().await;
    let ns = TestNamespace::create_on(&kubeconfig, "restart-keeps-data").await;
    let created = ns.create_workflow_from(EXAMPLE).await;
    let name = created.metadata.name.clone().unwrap();

    control_plane.stop().await;
    let unreachable = ns.workflows().get(&name).await;
    assert!(unreachable.is_err(), "the server still answers after stop");

    let config = crate::harness::config_from_kubeconfig(&control_plane.start().await).await;
    assert_eq!(
        config.cluster_url, ns.config.cluster_url,
        "the restarted server keeps its address"
    );
    // The client made before the restart reconnects to the same address with the same CA.
    let stored = ns.workflows().get(&name).await.unwrap();
    assert_eq!(stored.metadata.uid, created.metadata.uid);
    assert_eq!(stage_of(&stored), "pending");
}
