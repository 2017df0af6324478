//! The one place that knows how tests reach the control plane: a client from `KUBECONFIG`, a
//! fresh namespace per test (namespace), extra control plane instances for tests that stop a
//! server and what their logs say (controlplane), stagectl run as a process (process), the
//! stand-ins a test starts (github, prometheus), the stage-machine policy (policy), and plays
//! as the tests drive them (plays).

mod controlplane;
mod github;
mod namespace;
mod plays;
mod policy;
mod process;
mod prometheus;

pub use controlplane::*;
pub use github::*;
pub use namespace::*;
pub use plays::WaitNode;
pub use policy::*;
pub use process::*;
pub use prometheus::*;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use kube::Config;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub fn repo_path(relative: impl AsRef<Path>) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn workflow_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow"),
        "workflows",
    )
}

/// The kubeconfig of the control plane `make test` started.
pub fn kubeconfig_path_from_env() -> PathBuf {
    std::env::var_os("KUBECONFIG")
        .map(PathBuf::from)
        .expect("KUBECONFIG is not set: run these tests with `make test`")
}

pub async fn config_from_kubeconfig(path: &Path) -> Config {
    let kubeconfig = Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("cannot read kubeconfig {}: {e}", path.display()));
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig")
}

/// How long a test waits for a condition before it fails.
pub const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// Asks `probe` again every 100 ms until it gives a value, and returns that; fails the test
/// saying `otherwise` once `within` has passed.
pub async fn eventually<T>(
    otherwise: &str,
    within: std::time::Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "{otherwise}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

pub fn load_manifest(relative: impl AsRef<Path>) -> DynamicObject {
    let path = repo_path(relative);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

pub(crate) fn unique_name(test: &str) -> String {
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

pub(crate) fn sanitize(text: &str, max: usize) -> String {
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
