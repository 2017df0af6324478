//! Control plane instances a test owns, and what their logs and audit say.

use std::path::{Path, PathBuf};

use super::*;

/// A control plane instance of its own, for tests that stop or restart the server; started
/// and stopped through the same scripts as the shared one, with Argo's Workflow CRD alone
/// (`STAGECTL_CONTROLPLANE_CRDS=workflows`; the tests that own one use no other, and the
/// twelve cost a fresh server 49 CPU-s where the one costs 17). Stopped on drop.
pub struct OwnControlPlane {
    state_dir: PathBuf,
}

impl OwnControlPlane {
    pub fn new(test: &str) -> Self {
        let state_dir = std::env::temp_dir().join(unique_name(test));
        Self { state_dir }
    }

    /// Starts (or restarts) the instance and returns the path of its kubeconfig.
    pub async fn start(&self) -> PathBuf {
        self.start_with(&[]).await
    }

    pub async fn start_with(&self, env: &[(&str, &str)]) -> PathBuf {
        let output = self.script("start", env).await;
        let stdout = String::from_utf8(output.stdout).unwrap();
        let path = stdout
            .trim()
            .strip_prefix("KUBECONFIG=")
            .unwrap_or_else(|| panic!("start printed {stdout:?}, not KUBECONFIG=<path>"));
        PathBuf::from(path)
    }

    pub async fn stop(&self) {
        self.script("stop", &[]).await;
    }

    pub fn set_latency(&self, latency: Option<std::time::Duration>) {
        set_latency(&self.state_dir, latency);
    }

    /// Starts the instance, for a start that may fail: whether it succeeded.
    pub async fn start_succeeds(&self) -> bool {
        self.run("start", &[]).await.status.success()
    }

    /// What the instance's server logged, across its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("controlplane.log")).unwrap_or_default()
    }

    async fn run(&self, name: &str, env: &[(&str, &str)]) -> std::process::Output {
        tokio::process::Command::new(repo_path("tests/controlplane").join(name))
            .env("STAGECTL_CONTROLPLANE_DIR", &self.state_dir)
            .env("STAGECTL_CONTROLPLANE_CRDS", "workflows")
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::inherit())
            .output()
            .await
            .unwrap_or_else(|e| panic!("run tests/controlplane/{name}: {e}"))
    }

    async fn script(&self, name: &str, env: &[(&str, &str)]) -> std::process::Output {
        let output = self.run(name, env).await;
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

/// One request as the API server's audit log recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedRequest {
    pub verb: String,
    pub resource: String,
    pub name: String,
    pub code: u16,
    pub user_agent: String,
    pub received: jiff::Timestamp,
}

/// Makes the API server of the control plane in `state_dir` slow for every client from the
/// next request on (its latency proxy holds each chunk a client sends this long); None ends it.
pub fn set_latency(state_dir: &Path, latency: Option<std::time::Duration>) {
    let text = latency.map_or(String::new(), |l| format!("{}ms", l.as_millis()));
    let path = state_dir.join("latency");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The length of a file (a log) now: where a later read of what it gained starts.
pub fn file_end(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .len()
}

/// What a file (a log) holds from byte `from` on.
pub fn read_since(path: &Path, from: u64) -> String {
    use std::io::{Read, Seek};
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut file| {
            file.seek(std::io::SeekFrom::Start(from))?;
            file.read_to_end(&mut text)
        })
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    String::from_utf8_lossy(&text).into_owned()
}

/// Waits, for a minute at most (else fails saying `otherwise`), until the log at `path` holds,
/// from byte `from` on, a line that `found` accepts.
pub async fn wait_for_log_line(
    path: &Path,
    from: u64,
    otherwise: &str,
    found: impl Fn(&str) -> bool,
) {
    eventually(otherwise, MINUTE, async || {
        read_since(path, from).lines().any(&found).then_some(())
    })
    .await
}

/// Whether a process runs: gone once reaped, and a zombie no longer runs either.
pub fn process_running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .is_ok_and(|stat| !stat.contains(") Z "))
}
