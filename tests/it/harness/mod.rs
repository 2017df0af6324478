//! The one place that knows how tests reach the control plane: a client from `KUBECONFIG`, a
//! fresh namespace per test, and extra control plane instances for tests that stop a server.

mod plays;

pub use plays::WaitNode;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

pub fn repo_path(relative: &str) -> PathBuf {
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
fn delete_from_a_thread<K>(
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

pub fn stagectl_command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_stagectl"));
    // Tests must not pick up the developer's own settings.
    for var in [
        "STAGECTL_NAMESPACE",
        "STAGECTL_WORKFLOW",
        "STAGECTL_STAGES",
        "STAGECTL_TIMEOUT",
        "STAGECTL_LOG",
        "GITHUB_TOKEN",
        "GITHUB_API_URL",
        "GITHUB_APP_ID",
        "GITHUB_APP_KEY_FILE",
        "GITHUB_APP_INSTALLATION_ID",
    ] {
        command.env_remove(var);
    }
    command.env(
        "KUBECONFIG",
        "/nonexistent/stagectl-tests-pass-kubeconfig-explicitly",
    );
    command.kill_on_drop(true);
    command
}

/// A finished stagectl process.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The names of the `items` of a list printed with `-o json`.
    pub fn item_names(&self) -> Vec<String> {
        self.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn of(mut command: tokio::process::Command) -> Self {
        let output = command.output().await.expect("run stagectl");
        Self {
            code: output
                .status
                .code()
                .expect("stagectl exited, not killed by a signal"),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }

    /// The `error: …` lines on stderr; a failure must have exactly one.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The HTTP status of a failed API call, for tests that assert how the server refused.
pub fn api_status<T: std::fmt::Debug>(result: kube::Result<T>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error status, got {other:?}"),
    }
}

/// The stand-in for GitHub's REST API (tests/github/standin.mjs), one per test; stopped on drop.
pub struct GitHubStandIn {
    pub url: String,
    _process: tokio::process::Child,
}

impl GitHubStandIn {
    pub async fn start() -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut process = tokio::process::Command::new("node")
            .arg(repo_path("tests/github/standin.mjs"))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node tests/github/standin.mjs (make test installs its packages)");
        let stdout = process.stdout.take().unwrap();
        let mut line = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            tokio::io::BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("the stand-in listens within 30s")
        .unwrap();
        let url = line
            .trim()
            .strip_prefix("GITHUB_API_URL=")
            .unwrap_or_else(|| panic!("the stand-in printed {line:?}"))
            .to_string();
        Self {
            url,
            _process: process,
        }
    }

    /// Replaces the parts of its state given (see the top of standin.mjs).
    pub async fn set(&self, state: serde_json::Value) {
        let status = self.admin("PUT", "/_standin/state", Some(state)).await;
        assert_eq!(status.0, 204, "{}", status.1);
    }

    /// Every API request it answered: (method, path, status).
    pub async fn requests(&self) -> Vec<(String, String, u16)> {
        self.log("requests")
            .await
            .into_iter()
            .map(|r| {
                (
                    r["method"].as_str().unwrap().to_string(),
                    r["path"].as_str().unwrap().to_string(),
                    r["status"].as_u64().unwrap() as u16,
                )
            })
            .collect()
    }

    /// The next API requests, one each, meet these faults (see the top of standin.mjs); those
    /// still queued are dropped.
    pub async fn faults(&self, next: &[&str]) {
        let status = self
            .admin(
                "PUT",
                "/_standin/faults",
                Some(serde_json::json!({ "next": next })),
            )
            .await;
        assert_eq!(status.0, 204, "{}", status.1);
    }

    /// One of its logs (see the top of standin.mjs): `requests`, or of what happened on
    /// "GitHub", `changes` and `deliveries`.
    pub async fn log(&self, which: &str) -> Vec<serde_json::Value> {
        let (status, body) = self.admin("GET", &format!("/_standin/{which}"), None).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, String) {
        let mut command = tokio::process::Command::new("curl");
        command
            .args(["-s", "-o", "-", "-w", "\\n%{http_code}", "-X", method])
            .arg(format!("{}{path}", self.url));
        if let Some(body) = body {
            command.args(["--data-binary", &body.to_string()]);
        }
        let output = command.output().await.expect("curl");
        let text = String::from_utf8(output.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), body.to_string())
    }
}

/// The alert rules of examples/monitoring/prometheus-rule.yaml as a Prometheus rule file (the
/// PrometheusRule's spec) in `dir`.
pub fn write_alert_rules(dir: &Path) -> PathBuf {
    let rule: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_path("examples/monitoring/prometheus-rule.yaml")).unwrap(),
    )
    .unwrap();
    let path = dir.join("prometheus-rule.rules.yaml");
    std::fs::write(&path, serde_yaml::to_string(&rule["spec"]).unwrap()).unwrap();
    path
}

/// A Prometheus server — Debian's, beside the promtool `make test` unpacks
/// (STAGECTL_PROMTOOL) — scraping one target and evaluating the alert rules every few seconds,
/// on a loopback port of its own. Stopped, and its data removed, on drop.
pub struct Prometheus {
    child: std::process::Child,
    dir: PathBuf,
    pub url: String,
}

/// How often the soak's Prometheus scrapes and evaluates: the controller's series change at
/// most this long before it sees them.
pub const PROMETHEUS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

impl Prometheus {
    /// Scrapes `metrics_url` (http://HOST:PORT/PATH) with examples/monitoring's alert rules.
    pub async fn start(metrics_url: &str) -> Self {
        let promtool = std::env::var_os("STAGECTL_PROMTOOL")
            .map(PathBuf::from)
            .expect("STAGECTL_PROMTOOL is not set: run this with `make test`");
        let binary = promtool.with_file_name("prometheus");
        let dir = std::env::temp_dir().join(unique_name("prometheus"));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = write_alert_rules(&dir);
        let (target, path) = metrics_url
            .trim_start_matches("http://")
            .split_once('/')
            .expect("a metrics URL http://HOST:PORT/PATH");
        let every = format!("{}s", PROMETHEUS_INTERVAL.as_secs());
        let config = serde_json::json!({
            "global": {"scrape_interval": every, "evaluation_interval": every},
            "rule_files": [rules],
            "scrape_configs": [{
                "job_name": "workflow-controller",
                "metrics_path": format!("/{path}"),
                "static_configs": [{"targets": [target]}],
            }],
        });
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, serde_yaml::to_string(&config).unwrap()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = std::process::Command::new(&binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let prometheus = Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while prometheus.get("/-/ready", &[]).await.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "Prometheus not ready within 60 s; see {}",
                prometheus.dir.join("prometheus.log").display()
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        prometheus
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Option<String> {
        let mut command = tokio::process::Command::new("curl");
        command.args(["-sf", "-m", "10", "-G", &format!("{}{path}", self.url)]);
        for (key, value) in query {
            command.args(["--data-urlencode", &format!("{key}={value}")]);
        }
        let output = command.output().await.ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// An instant query's result vector.
    pub async fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let text = self
            .get("/api/v1/query", &[("query", promql)])
            .await
            .unwrap_or_else(|| panic!("Prometheus did not answer {promql}"));
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until Prometheus has scraped its target and then evaluated every rule group after
    /// `since` (unix milliseconds), so that what the target showed then is in the alerts.
    pub async fn caught_up(&self, since: i64) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let scraped = self
                .oldest("/api/v1/targets", "activeTargets", "lastScrape")
                .await;
            let evaluated = self
                .oldest("/api/v1/rules", "groups", "lastEvaluation")
                .await;
            if scraped.is_some_and(|s| s > since) && evaluated.is_some_and(|e| e > since) {
                // The evaluation must come after the scrape that saw the end.
                if evaluated > scraped {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Prometheus did not scrape and evaluate within 60 s; see {}",
                self.dir.join("prometheus.log").display()
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// The oldest of the `field` times of the `list` in an API answer, in unix milliseconds.
    async fn oldest(&self, path: &str, list: &str, field: &str) -> Option<i64> {
        let answer: serde_json::Value = serde_json::from_str(&self.get(path, &[]).await?).ok()?;
        answer["data"][list]
            .as_array()?
            .iter()
            .map(|item| {
                item[field]
                    .as_str()?
                    .parse::<jiff::Timestamp>()
                    .ok()
                    .map(|t| t.as_millisecond())
            })
            .collect::<Option<Vec<i64>>>()?
            .into_iter()
            .min()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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
