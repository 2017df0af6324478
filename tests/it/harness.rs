//! The one place that knows how tests reach the control plane: a client from `KUBECONFIG`, a
//! fresh namespace per test, and extra control plane instances for tests that stop a server.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn workflow_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow"),
        "workflows",
    )
}

/// The control plane `make test` started, as named by `KUBECONFIG`.
pub async fn kubeconfig_from_env() -> Config {
    let path = std::env::var_os("KUBECONFIG")
        .expect("KUBECONFIG is not set: run these tests with `make test`");
    config_from_kubeconfig(Path::new(&path)).await
}

pub async fn config_from_kubeconfig(path: &Path) -> Config {
    let kubeconfig = Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("cannot read kubeconfig {}: {e}", path.display()));
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig")
}

/// A namespace of its own for one test, so tests run in parallel without seeing each other.
/// The control plane has no namespace controller, so namespaces are never deleted: the names
/// are unique across runs instead.
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
    pub config: Config,
}

impl TestNamespace {
    pub async fn new(test: &str) -> Self {
        let config = kubeconfig_from_env().await;
        Self::create_on(config, test).await
    }

    pub async fn create_on(config: Config, test: &str) -> Self {
        let client = Client::try_from(config.clone()).expect("client");
        let name = unique_name(test);
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
        }
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

pub fn load_manifest(relative: &str) -> DynamicObject {
    let path = repo_path(relative);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn unique_name(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let suffix = format!(
        "{:x}{:x}",
        (nanos as u64 ^ u64::from(std::process::id())) & 0xff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    format!("it-{}-{suffix}", sanitize(test, 62 - 3 - suffix.len()))
}

fn sanitize(text: &str, max: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    cleaned.trim_matches('-').to_string()
}

/// A control plane instance of its own, for tests that stop or restart the server; started
/// and stopped through the same scripts as the shared one. Stopped on drop.
pub struct OwnControlPlane {
    state_dir: PathBuf,
}

impl OwnControlPlane {
    pub fn new(test: &str) -> Self {
        let state_dir = std::env::temp_dir().join(unique_name(test));
        Self { state_dir }
    }

    /// Starts (or restarts) the instance and returns a config for it.
    pub async fn start(&self) -> Config {
        let output = self.script("start").await;
        let stdout = String::from_utf8(output.stdout).unwrap();
        let path = stdout
            .trim()
            .strip_prefix("KUBECONFIG=")
            .unwrap_or_else(|| panic!("start printed {stdout:?}, not KUBECONFIG=<path>"));
        config_from_kubeconfig(Path::new(path)).await
    }

    pub async fn stop(&self) {
        self.script("stop").await;
    }

    async fn script(&self, name: &str) -> std::process::Output {
        let output = tokio::process::Command::new(repo_path("tests/controlplane").join(name))
            .env("STAGECTL_CONTROLPLANE_DIR", &self.state_dir)
            .stderr(std::process::Stdio::inherit())
            .output()
            .await
            .unwrap_or_else(|e| panic!("run tests/controlplane/{name}: {e}"));
        assert!(
            output.status.success(),
            "tests/controlplane/{name} failed: {}",
            output.status
        );
        output
    }
}

impl Drop for OwnControlPlane {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_path("tests/controlplane/stop"))
            .env("STAGECTL_CONTROLPLANE_DIR", &self.state_dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// The HTTP status of a failed API call, for tests that assert how the server refused.
pub fn api_status<T: std::fmt::Debug>(result: kube::Result<T>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error status, got {other:?}"),
    }
}
