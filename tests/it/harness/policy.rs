//! The stage-machine policy bound to one test's namespace.

use std::path::PathBuf;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

use super::*;

/// The stage-machine policy of workflow-templates/ bound to one test's namespace, as
/// `kubectl apply -k` binds it to the namespace it installs into: the policy (cluster-wide,
/// shared by every test, applied server-side), its ConfigMap of parameters in the namespace, and a
/// binding of the namespace's own. Tests that set plays up directly, in namespaces of their own,
/// stay out of its reach. The binding goes with the value.
pub struct StageMachinePolicy {
    binding: String,
    kubeconfig: PathBuf,
}

impl StageMachinePolicy {
    pub const BREAK_GLASS_GROUP: &'static str = "stagectl:break-glass";

    /// Binds the policy to `ns` with the default stage order; returns once the API server
    /// enforces it there.
    pub async fn bind(ns: &TestNamespace) -> Self {
        Self::bind_with_stages(ns, None).await
    }

    pub async fn bind_with_stages(ns: &TestNamespace, stages: Option<&str>) -> Self {
        let text =
            std::fs::read_to_string(repo_path("workflow-templates/stage-machine-policy.yaml"))
                .unwrap();
        let mut binding_name = String::new();
        let mut last_stage = String::new();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let mut object: DynamicObject = serde::Deserialize::deserialize(document).unwrap();
            let kind = object.types.as_ref().unwrap().kind.clone();
            let (api, name): (Api<DynamicObject>, String) = match kind.as_str() {
                "ValidatingAdmissionPolicy" => (
                    Api::all_with(ns.client.clone(), &admission_resource(&kind)),
                    object.metadata.name.clone().unwrap(),
                ),
                "ValidatingAdmissionPolicyBinding" => {
                    binding_name = format!("stagectl-stage-machine.{}", ns.name);
                    object.metadata.name = Some(binding_name.clone());
                    object.data["spec"]["matchResources"]["namespaceSelector"]["matchLabels"] =
                        serde_json::json!({"kubernetes.io/metadata.name": ns.name});
                    (
                        Api::all_with(ns.client.clone(), &admission_resource(&kind)),
                        binding_name.clone(),
                    )
                }
                "ConfigMap" => {
                    if let Some(stages) = stages {
                        object.data["data"]["stages"] = serde_json::json!(stages);
                    }
                    // What the probe of `in_force` needs: the order's last stage.
                    let order = object.data["data"]["stages"].as_str().unwrap();
                    last_stage = order.rsplit(',').next().unwrap().trim().to_string();
                    (
                        Api::namespaced_with(
                            ns.client.clone(),
                            &ns.name,
                            &ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
                        ),
                        object.metadata.name.clone().unwrap(),
                    )
                }
                other => panic!("unexpected {other} in stage-machine-policy.yaml"),
            };
            let params = kube::api::PatchParams::apply("stagectl-tests").force();
            api.patch(&name, &params, &kube::api::Patch::Apply(&object))
                .await
                .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
        }
        let policy = Self {
            binding: binding_name,
            kubeconfig: ns.kubeconfig.clone(),
        };
        Self::anchor(ns).await;
        policy.in_force(ns, &last_stage).await;
        policy
    }

    /// A binding that names the policy, and with it ConfigMap parameters, for as long as the
    /// server runs, and applies nowhere. The kube-apiserver (kubernetes#130887, 1.36 included)
    /// stops its informer of a parameter kind for good once no binding names that kind for a
    /// second, and then finds no ConfigMap created after: every test deletes its binding, and
    /// without this one the next test's plays would all be refused.
    async fn anchor(ns: &TestNamespace) {
        let kind = "ValidatingAdmissionPolicyBinding";
        let anchor: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": "stagectl-stage-machine.tests-anchor"},
            "spec": {
                "policyName": "stagectl-stage-machine",
                "validationActions": ["Deny"],
                "paramRef": {"name": "stagectl-stage-machine", "parameterNotFoundAction": "Deny"},
                "matchResources": {"namespaceSelector": {"matchLabels": {"stagectl.dev/no-namespace": "anchor"}}},
            },
        }))
        .unwrap();
        Api::<DynamicObject>::all_with(ns.client.clone(), &admission_resource(kind))
            .patch(
                "stagectl-stage-machine.tests-anchor",
                &kube::api::PatchParams::apply("stagectl-tests").force(),
                &kube::api::Patch::Apply(&anchor),
            )
            .await
            .unwrap_or_else(|e| panic!("apply the anchor binding: {e}"));
    }

    /// The API server loads policies and bindings from its informers, a moment after they are
    /// written: until then, a play created at its last stage (a server-side dry run) is admitted.
    async fn in_force(&self, ns: &TestNamespace, last_stage: &str) {
        let mut probe = load_manifest("examples/play-workflow.yaml");
        probe.metadata.generate_name = Some("policy-probe-".into());
        let last = last_stage.to_string();
        probe
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("current-stage".into(), last);
        Self::until_refused(ns, &probe, 403, "the stage-machine policy is in force").await;
    }

    /// Waits until the server refuses to create `probe` (a server-side dry run) with `code`:
    /// it loads policies, bindings and parameters through informers, a moment after they are
    /// written.
    pub async fn until_refused(ns: &TestNamespace, probe: &DynamicObject, code: u16, what: &str) {
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match ns.workflows().create(&dry_run, probe).await {
                Err(kube::Error::Api(status)) if status.code == code => return,
                Ok(_) | Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await
                }
                other => panic!("not yet after 30s that {what}: {other:?}"),
            }
        }
    }

    /// A client of an operator in the break-glass group (the admin, impersonating one).
    pub fn break_glass_client(ns: &TestNamespace) -> Client {
        let mut config = ns.config.clone();
        config.auth_info.impersonate = Some("operator-on-call".into());
        config.auth_info.impersonate_groups = Some(vec![
            Self::BREAK_GLASS_GROUP.into(),
            "system:masters".into(),
        ]);
        Client::try_from(config).unwrap()
    }
}

fn admission_resource(kind: &str) -> ApiResource {
    let plural = match kind {
        "ValidatingAdmissionPolicy" => "validatingadmissionpolicies",
        "ValidatingAdmissionPolicyBinding" => "validatingadmissionpolicybindings",
        other => panic!("not an admission kind: {other}"),
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind),
        plural,
    )
}

impl Drop for StageMachinePolicy {
    fn drop(&mut self) {
        let bindings = |client| {
            Api::<DynamicObject>::all_with(
                client,
                &admission_resource("ValidatingAdmissionPolicyBinding"),
            )
        };
        if let Err(err) = delete_from_a_thread(&self.kubeconfig, &self.binding, bindings) {
            eprintln!("binding {} not deleted: {err}", self.binding);
        }
    }
}
