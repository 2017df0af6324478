//! What a platform team applies: every manifest under workflow-templates/ and examples/ is
//! accepted by the real API server with Argo's full CRDs (server-side dry run).

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

use crate::harness::{TestNamespace, api_status, repo_path};

fn resource_of(object: &DynamicObject) -> ApiResource {
    let types = object.types.as_ref().expect("apiVersion and kind");
    let (group, version) = types
        .api_version
        .split_once('/')
        .unwrap_or(("", &types.api_version));
    let plural = match types.kind.as_str() {
        "Workflow" => "workflows",
        "WorkflowTemplate" => "workflowtemplates",
        "Sensor" => "sensors",
        "EventSource" => "eventsources",
        "ServiceAccount" => "serviceaccounts",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        other => panic!("no plural known for {other}"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, &types.kind), plural)
}

fn documents(dir: &str) -> Vec<(String, DynamicObject)> {
    let mut files: Vec<_> = std::fs::read_dir(repo_path(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let object: DynamicObject = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            documents.push((file.display().to_string(), object));
        }
    }
    documents
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn every_manifest_is_accepted_by_the_server() {
    let ns = TestNamespace::new("manifests").await;
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut checked = 0;
    for dir in ["workflow-templates", "examples"] {
        for (file, mut object) in documents(dir) {
            if let Some(subjects) = object.data.get_mut("subjects") {
                for subject in subjects.as_array_mut().unwrap() {
                    subject["namespace"] = json!(ns.name);
                }
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(ns.client.clone(), &ns.name, &resource_of(&object));
            api.create(&dry_run, &object)
                .await
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            checked += 1;
        }
    }
    assert!(checked >= 13, "{checked} manifests");
}

/// The sensors name the Workflow they create after the webhook's delivery id: GitHub's
/// redelivery of the same webhook is refused by the server instead of resuming twice.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn a_redelivered_webhook_is_refused_as_already_existing() {
    let ns = TestNamespace::new("redelivery").await;
    let (_, sensor) = documents("workflow-templates")
        .into_iter()
        .find(|(file, _)| file.ends_with("sensor-waiting-pr-created.yaml"))
        .unwrap();
    let mut workflow: DynamicObject = serde_json::from_value(
        sensor.data["spec"]["triggers"][0]["template"]["k8s"]["source"]["resource"].clone(),
    )
    .unwrap();
    workflow.metadata.name = Some("stage-resume-72d3162e-cc78-11e3-81ab-4c9367dc0958".into());
    ns.workflows()
        .create(&PostParams::default(), &workflow)
        .await
        .unwrap();
    let again = ns
        .workflows()
        .create(&PostParams::default(), &workflow)
        .await;
    assert_eq!(api_status(again), 409);
}
