//! A namespace of its own per test, and the accounts and roles a test gives it.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, GroupVersionKind, PostParams};
use kube::{Client, Config};
use serde_json::json;

use super::*;

/// A namespace of its own for one test, so tests run in parallel without seeing each other.
/// Deleted when the test ends, pass or fail; the control plane's namespace controller then
/// deletes everything in it.
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
    pub config: Config,
    pub kubeconfig: PathBuf,
    /// Where the audit log ended when the namespace was made: its requests come after.
    audit_offset: u64,
}

impl TestNamespace {
    pub async fn new(test: &str) -> Self {
        Self::create_on(&kubeconfig_path_from_env(), test).await
    }

    pub async fn create_on(kubeconfig: &Path, test: &str) -> Self {
        let config = config_from_kubeconfig(kubeconfig).await;
        let client = Client::try_from(config.clone()).expect("client");
        let name = unique_name(test);
        let audit_offset = std::fs::metadata(kubeconfig.with_file_name("audit.log"))
            .map(|m| m.len())
            .unwrap_or(0);
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"stagectl.dev/test": sanitize(test, 63)}}
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        Self {
            name,
            client,
            config,
            kubeconfig: kubeconfig.to_path_buf(),
            audit_offset,
        }
    }

    /// A path for a file or directory of this test's own, in a directory that goes with the
    /// namespace, so that kubeconfigs with tokens and copies of manifests are not left behind.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.scratch_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        dir.join(name)
    }

    fn scratch_dir(&self) -> PathBuf {
        std::env::temp_dir().join(&self.name)
    }

    /// Applies the manifests (paths in the repository) into the namespace as `kubectl apply
    /// --server-side` does, the server validating every field strictly, through this client:
    /// a kubectl process first downloads and parses the server's OpenAPI for its check of field
    /// validation, 0.5 CPU-s or more each time. (`manifests::` tests kubectl's own install.)
    pub async fn apply_manifests(&self, paths: &[&str]) {
        let params = kube::api::PatchParams::apply("stagectl-tests")
            .force()
            .validation_strict();
        // One discovery request per kind, not per object.
        let mut resources = std::collections::HashMap::new();
        for path in paths {
            let text = std::fs::read_to_string(repo_path(path))
                .unwrap_or_else(|e| panic!("read {path}: {e}"));
            for document in serde_yaml::Deserializer::from_str(&text) {
                let object: DynamicObject = serde::Deserialize::deserialize(document)
                    .unwrap_or_else(|e| panic!("parse {path}: {e}"));
                let types = object.types.as_ref().expect("apiVersion and kind");
                let kind = GroupVersionKind::try_from(types).unwrap();
                if !resources.contains_key(&kind) {
                    let (resource, _) = kube::discovery::pinned_kind(&self.client, &kind)
                        .await
                        .unwrap_or_else(|e| panic!("{types:?} of {path}: {e}"));
                    resources.insert(kind.clone(), resource);
                }
                let name = object.metadata.name.clone().expect("metadata.name");
                Api::<DynamicObject>::namespaced_with(
                    self.client.clone(),
                    &self.name,
                    &resources[&kind],
                )
                .patch(&name, &params, &kube::api::Patch::Apply(&object))
                .await
                .unwrap_or_else(|e| panic!("apply {} {name} of {path}: {e}", types.kind));
            }
        }
    }

    /// Runs the real stagectl binary against this namespace with the admin kubeconfig.
    pub async fn stagectl(&self, args: &[&str]) -> Run {
        self.stagectl_as(&self.kubeconfig, args).await
    }

    /// Runs stagectl with another kubeconfig (a ServiceAccount's, say).
    pub async fn stagectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        Run::of(self.stagectl_command(kubeconfig, args)).await
    }

    /// Runs stagectl with a stdout nobody reads any more (`stagectl … | head` once head has
    /// exited): a pipe whose reading end is closed. Its `stdout` is empty.
    pub async fn stagectl_to_closed_stdout(&self, args: &[&str]) -> Run {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut command = self.stagectl_command(&self.kubeconfig, args);
        command.stdout(writer);
        Run::of(command).await
    }

    fn stagectl_command(&self, kubeconfig: &Path, args: &[&str]) -> tokio::process::Command {
        let mut command = stagectl_command();
        command
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["-n", &self.name])
            .args(args);
        command
    }

    /// A ServiceAccount of this namespace that may do only `verbs` on workflows (a Role and its
    /// binding, named after it).
    pub async fn account_with_workflow_verbs(&self, account: &str, verbs: &[&str]) {
        fn create<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
            serde_json::from_value(value).unwrap()
        }
        self.api::<ServiceAccount>()
            .create(
                &PostParams::default(),
                &create(json!({"metadata": {"name": account}})),
            )
            .await
            .unwrap();
        self.api::<Role>()
            .create(
                &PostParams::default(),
                &create(json!({
                    "metadata": {"name": account},
                    "rules": [{"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": verbs}],
                })),
            )
            .await
            .unwrap();
        self.api::<RoleBinding>()
            .create(
                &PostParams::default(),
                &create(json!({
                    "metadata": {"name": account},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
                    "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": self.name}],
                })),
            )
            .await
            .unwrap();
    }

    /// A real token of a ServiceAccount of this namespace, from the TokenRequest API.
    pub async fn service_account_token(&self, account: &str) -> String {
        let request =
            serde_json::from_value(serde_json::json!({"spec": {"expirationSeconds": 3600}}))
                .expect("token request");
        self.api::<k8s_openapi::api::core::v1::ServiceAccount>()
            .create_token_request(account, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("token for {account}: {e}"))
            .status
            .expect("token issued")
            .token
    }

    /// Creates the example play and returns its name.
    pub async fn create_play(&self) -> String {
        self.create_workflow_from("examples/play-workflow.yaml")
            .await
            .metadata
            .name
            .expect("created with a name")
    }

    pub async fn meta(&self, workflow: &str) -> ObjectMeta {
        self.workflows()
            .get_metadata(workflow)
            .await
            .unwrap_or_else(|e| panic!("get {workflow}: {e}"))
            .metadata
    }

    /// Requests the API server recorded for this namespace (its audit log, from where it ended
    /// when the namespace was made), for proofs of how many requests a command made.
    pub async fn audited_requests(&self) -> Vec<AuditedRequest> {
        self.audit_entries()
            .await
            .into_iter()
            // A write's arrival is logged apart from its answer; one entry per request.
            .filter(|entry| entry["stage"] != "RequestReceived")
            .map(|entry| AuditedRequest {
                verb: entry["verb"].as_str().unwrap_or_default().to_string(),
                resource: entry["objectRef"]["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                name: entry["objectRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                code: entry["responseStatus"]["code"].as_u64().unwrap_or_default() as u16,
                user_agent: entry["userAgent"].as_str().unwrap_or_default().to_string(),
                received: entry["requestReceivedTimestamp"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            })
            .collect()
    }

    /// Waits until the audit log records, after the first `after` requests of this namespace, a
    /// request that `matches`, and returns it; fails the test, naming `what`, after a minute.
    pub async fn audited_eventually(
        &self,
        after: usize,
        what: &str,
        matches: impl Fn(&AuditedRequest) -> bool,
    ) -> AuditedRequest {
        eventually(
            &format!("the API server never saw {what}"),
            MINUTE,
            async || {
                let mut requests = self.audited_requests().await;
                requests.drain(after.min(requests.len())..).find(&matches)
            },
        )
        .await
    }

    /// The audit log's entries for this namespace, as the server wrote them.
    pub async fn audit_entries(&self) -> Vec<serde_json::Value> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.kubeconfig.with_file_name("audit.log");
        let mut file = tokio::fs::File::open(&path)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        file.seek(std::io::SeekFrom::Start(self.audit_offset))
            .await
            .unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text)
            .await
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|entry| entry["objectRef"]["namespace"] == self.name.as_str())
            .collect()
    }

    pub fn workflows(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.name, &workflow_resource())
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Creates the Workflow of a manifest under examples/ (or any repo path) in this namespace.
    pub async fn create_workflow_from(&self, manifest: &str) -> DynamicObject {
        self.workflows()
            .create(&PostParams::default(), &load_manifest(manifest))
            .await
            .unwrap_or_else(|e| panic!("create {manifest}: {e}"))
    }
}

/// Deletes one object from a thread of its own, for a drop: a test's runtime may be shutting
/// down, and a drop cannot await. A server that is gone (a test stopped its own) leaves nothing
/// to clean.
pub(crate) fn delete_from_a_thread<K>(
    kubeconfig: &Path,
    name: &str,
    api: impl FnOnce(Client) -> Api<K> + Send + 'static,
) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + kube::Resource + Send + 'static,
{
    let (name, kubeconfig) = (name.to_string(), kubeconfig.to_path_buf());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let client = Client::try_from(config_from_kubeconfig(&kubeconfig).await)?;
            let (api, params) = (api(client), kube::api::DeleteParams::default());
            let deletion = api.delete(&name, &params);
            tokio::time::timeout(std::time::Duration::from_secs(10), deletion)
                .await
                .map_err(|_| kube::Error::Service("no answer in 10s".into()))??;
            Ok(())
        })
    })
    .join()
    .unwrap_or(Ok(()))
}

impl Drop for TestNamespace {
    /// Deletes the namespace from a thread of its own: a test's runtime may be shutting down,
    /// and a drop cannot await. A server that is gone (a test stopped its own) leaves nothing
    /// to clean.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.scratch_dir());
        if let Err(err) = delete_from_a_thread(&self.kubeconfig, &self.name, Api::<Namespace>::all)
        {
            eprintln!("namespace {} not deleted: {err}", self.name);
        }
    }
}

/// A kubeconfig that authenticates as a ServiceAccount of the namespace with a real token.
pub async fn service_account_kubeconfig(ns: &TestNamespace, account: &str) -> PathBuf {
    let token = ns.service_account_token(account).await;
    let admin: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&ns.kubeconfig).unwrap()).unwrap();
    let cluster = admin["clusters"][0]["cluster"].clone();
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test", "cluster": serde_json::to_value(cluster).unwrap()}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": "test", "user": account, "namespace": ns.name}}],
        "current-context": account,
    });
    let path = ns.scratch(&format!("{account}.kubeconfig"));
    std::fs::write(&path, serde_json::to_string(&kubeconfig).unwrap()).unwrap();
    path
}

/// Applies workflow-templates/rbac.yaml into the namespace, optionally without the `patch` verb.
pub async fn apply_rbac(ns: &TestNamespace, without_patch: bool) {
    let text = std::fs::read_to_string(repo_path("workflow-templates/rbac.yaml")).unwrap();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let mut object: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
        match object["kind"].as_str().unwrap() {
            "ServiceAccount" => {
                create_in::<ServiceAccount>(ns, object).await;
            }
            "Role" => {
                if without_patch {
                    for rule in object["rules"].as_array_mut().unwrap() {
                        rule["verbs"]
                            .as_array_mut()
                            .unwrap()
                            .retain(|v| v != "patch");
                    }
                }
                create_in::<Role>(ns, object).await;
            }
            "RoleBinding" => {
                for subject in object["subjects"].as_array_mut().unwrap() {
                    subject["namespace"] = json!(ns.name);
                }
                create_in::<RoleBinding>(ns, object).await;
            }
            other => panic!("unexpected {other} in rbac.yaml"),
        }
    }
}

/// Creates one object of rbac.yaml in the test's namespace.
async fn create_in<K>(ns: &TestNamespace, object: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + serde::Serialize,
    <K as kube::Resource>::DynamicType: Default,
{
    ns.api::<K>()
        .create(
            &PostParams::default(),
            &serde_json::from_value::<K>(object).unwrap(),
        )
        .await
        .unwrap();
}
