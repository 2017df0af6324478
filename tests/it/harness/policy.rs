//! The stage-machine policy bound to one test's namespace.

use std::path::PathBuf;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

use super::*;

/// The stage-machine policy bound to one test's namespace, as `kubectl apply -k` binds it to the
/// namespace it installs into: rendered for the pipeline as `stagectl pipeline render` renders
/// workflow-templates/stage-machine-policy.yaml, under a name of the namespace's own (the policy
/// is cluster-wide; tests run side by side, some with stage orders of their own). Tests that set
/// plays up directly, in namespaces of their own, stay out of its reach. Policy and binding go
/// with the value.
pub struct StageMachinePolicy {
    policy: String,
    kubeconfig: PathBuf,
}

impl StageMachinePolicy {
    pub const BREAK_GLASS_GROUP: &'static str = "stagectl:break-glass";

    /// Binds the policy to `ns` with the default stage order; returns once the API server
    /// enforces it there.
    pub async fn bind_with_stages(ns: &TestNamespace, stages: Option<&str>) -> Self {
        let pipeline = match stages {
            Some(list) => stagectl_core::stage::Pipeline::parse(list).unwrap(),
            None => stagectl_core::stage::Pipeline::default(),
        };
        Self::bind_pipeline(ns, &pipeline).await
    }

    /// Binds the policy rendered for `pipeline`; binding another pipeline's to the same
    /// namespace later replaces it, as applying a changed definition's manifests does.
    pub async fn bind_pipeline(
        ns: &TestNamespace,
        pipeline: &stagectl_core::stage::Pipeline,
    ) -> Self {
        let policy_name = format!("stagectl-stage-machine-{}", ns.name);
        let rendered = stagectl_core::render::policy(pipeline);
        for document in serde_yaml::Deserializer::from_str(&rendered.text) {
            let mut object: DynamicObject = serde::Deserialize::deserialize(document).unwrap();
            let kind = object.types.as_ref().unwrap().kind.clone();
            object.metadata.name = Some(policy_name.clone());
            if kind == "ValidatingAdmissionPolicyBinding" {
                object.data["spec"]["policyName"] = json!(policy_name);
                object.data["spec"]["matchResources"]["namespaceSelector"]["matchLabels"] =
                    json!({"kubernetes.io/metadata.name": ns.name});
            }
            Self::apply(ns, &object).await;
        }
        let policy = Self {
            policy: policy_name,
            kubeconfig: ns.kubeconfig.clone(),
        };
        policy.in_force(ns, pipeline.last().name()).await;
        policy
    }

    /// Applies a policy or a binding (server-side, as kubectl apply does).
    pub async fn apply(ns: &TestNamespace, object: &DynamicObject) {
        let kind = object.types.as_ref().unwrap().kind.clone();
        let name = object.metadata.name.clone().unwrap();
        let params = kube::api::PatchParams::apply("stagectl-tests").force();
        Api::<DynamicObject>::all_with(ns.client.clone(), &admission_resource(&kind))
            .patch(&name, &params, &kube::api::Patch::Apply(object))
            .await
            .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
    }

    /// The policy or the binding as the server holds them (both carry the policy's name), ready
    /// to be applied again.
    pub async fn read(&self, ns: &TestNamespace, kind: &str) -> DynamicObject {
        let mut object =
            Api::<DynamicObject>::all_with(ns.client.clone(), &admission_resource(kind))
                .get(&self.policy)
                .await
                .unwrap();
        object.metadata.managed_fields = None;
        object.metadata.resource_version = None;
        object.metadata.uid = None;
        object
    }

    /// Deletes the binding, as a GitOps tool pruning it does.
    pub async fn unbind(&self, ns: &TestNamespace) {
        let kind = "ValidatingAdmissionPolicyBinding";
        Api::<DynamicObject>::all_with(ns.client.clone(), &admission_resource(kind))
            .delete(&self.policy, &Default::default())
            .await
            .unwrap();
    }

    /// The API server loads policies and bindings from its informers, a moment after they are
    /// written: until then, a play created at its last stage (a server-side dry run) is admitted.
    pub async fn in_force(&self, ns: &TestNamespace, last_stage: &str) {
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
        for kind in [
            "ValidatingAdmissionPolicyBinding",
            "ValidatingAdmissionPolicy",
        ] {
            let objects =
                |client| Api::<DynamicObject>::all_with(client, &admission_resource(kind));
            if let Err(err) = delete_from_a_thread(&self.kubeconfig, &self.policy, objects) {
                eprintln!("{kind} {} not deleted: {err}", self.policy);
            }
        }
    }
}
