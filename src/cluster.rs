//! All Kubernetes I/O: connecting, the Workflow calls stagectl makes, retries, and turning API
//! errors into stagectl's error classes.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ObjectList, PartialObjectMeta};
use kube::runtime::watcher;
use kube::{Client, Config};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::error::{Error, Result};

/// What the API server records as the client of every request stagectl makes.
pub const USER_AGENT: &str = concat!("stagectl/", env!("CARGO_PKG_VERSION"));

pub type WorkflowMeta = PartialObjectMeta<DynamicObject>;

/// Where to connect and how long to keep trying.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    pub timeout: Duration,
}

/// A connection to one API server, with the namespace commands default to and the deadline by
/// which every call must have succeeded.
pub struct Cluster {
    client: Client,
    pub namespace: String,
    pub server: String,
    deadline: Instant,
    timeout: Duration,
    requests: AtomicU32,
    retries: AtomicU32,
}

pub fn workflow_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow"),
        "workflows",
    )
}

impl Cluster {
    /// Loads the configuration the way kubectl does: `--kubeconfig`, else `KUBECONFIG` or
    /// ~/.kube/config, else the pod's in-cluster ServiceAccount; `--context` picks a context.
    /// The namespace is `-n`, else the context's, else (in a pod) the pod's own.
    pub async fn connect(options: &ConnectOptions) -> Result<Self> {
        let kube_options = KubeConfigOptions {
            context: options.context.clone(),
            ..Default::default()
        };
        let mut config = match (&options.kubeconfig, &options.context) {
            (Some(path), _) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                    Error::Usage(format!(
                        "cannot read kubeconfig {}: {}; pass a readable file with --kubeconfig",
                        path.display(),
                        one_line(&e.to_string())
                    ))
                })?;
                Config::from_custom_kubeconfig(kubeconfig, &kube_options).await.map_err(config_error)?
            }
            (None, Some(_)) => Config::from_kubeconfig(&kube_options).await.map_err(config_error)?,
            (None, None) => Config::infer().await.map_err(|e| {
                Error::Usage(format!(
                    "no Kubernetes configuration: {}; set KUBECONFIG, pass --kubeconfig, or run in a pod",
                    one_line(&e.to_string())
                ))
            })?,
        };
        config.connect_timeout = Some(options.timeout.min(Duration::from_secs(5)));
        config.read_timeout = Some(Duration::from_secs(30));
        config.write_timeout = Some(Duration::from_secs(30));
        // Our own retries (`call`) are bounded by --timeout and logged; kube's would add up to 15
        // more behind them, each honouring Retry-After without that bound.
        config.default_retry = false;
        // Audit logs and API priority and fairness tell a stage change from other writers by this.
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        ));
        let namespace = options
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| {
            Error::Usage(format!(
                "cannot build a client for {server}: {}",
                one_line(&e.to_string())
            ))
        })?;
        Ok(Self {
            client,
            namespace,
            server,
            deadline: Instant::now() + options.timeout,
            timeout: options.timeout,
            requests: AtomicU32::new(0),
            retries: AtomicU32::new(0),
        })
    }

    pub fn workflows(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &workflow_resource())
    }

    /// Workflows as metadata only: requests made through it never transfer the (large) status.
    pub fn workflow_metas(&self, namespace: &str) -> Api<WorkflowMeta> {
        Api::namespaced_with(self.client.clone(), namespace, &workflow_resource())
    }

    /// Whether --timeout still leaves time to try again.
    pub fn before_deadline(&self) -> bool {
        Instant::now() < self.deadline
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Requests sent so far, retries included.
    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Runs one API call, retrying with exponential backoff and jitter what can heal
    /// (connection errors, 429 with its Retry-After, 5xx, 409 Conflict) until the deadline.
    pub async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = kube::Result<T>>,
    {
        let mut op = op;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times()
            .with_total_delay(Some(remaining));
        let attempt = || {
            self.requests.fetch_add(1, Ordering::Relaxed);
            op()
        };
        let retried = attempt
            .retry(backoff)
            .when(is_transient)
            .adjust(|err, delay| delay.map(|d| retry_after(err).unwrap_or(d)))
            .notify(|err, delay| {
                self.retries.fetch_add(1, Ordering::Relaxed);
                warn!(call = what, error = %describe(err), retry_in_ms = delay.as_millis() as u64, "transient API error; retrying");
            });
        match tokio::time::timeout_at(self.deadline, retried).await {
            Ok(result) => result,
            Err(_) => Err(kube::Error::Service(
                format!("no answer within the {}s timeout", self.timeout.as_secs()).into(),
            )),
        }
    }

    pub async fn get_meta(&self, namespace: &str, name: &str) -> Result<WorkflowMeta> {
        let api = self.workflows(namespace);
        self.call("get workflow", || api.get_metadata(name))
            .await
            .map_err(|e| self.classify(e, &Target::workflow(namespace, name), "get"))
    }

    pub async fn get(&self, namespace: &str, name: &str) -> Result<DynamicObject> {
        let api = self.workflows(namespace);
        self.call("get workflow", || api.get(name))
            .await
            .map_err(|e| self.classify(e, &Target::workflow(namespace, name), "get"))
    }

    /// Sends a JSON Patch and returns the metadata as committed, or the raw API error so that the
    /// caller can tell a failed `test` (422) from the rest.
    pub async fn patch_meta(
        &self,
        namespace: &str,
        name: &str,
        patch: &json_patch::Patch,
    ) -> Result<WorkflowMeta, kube::Error> {
        let api = self.workflows(namespace);
        let params = PatchParams::default();
        let patch = Patch::<()>::Json(patch.clone());
        self.call("patch workflow", || {
            api.patch_metadata(name, &params, &patch)
        })
        .await
    }

    /// Sends a JSON Patch that touches the status too, and returns the whole Workflow as
    /// committed, or the raw API error.
    pub async fn patch_workflow(
        &self,
        namespace: &str,
        name: &str,
        patch: &json_patch::Patch,
    ) -> Result<DynamicObject, kube::Error> {
        let api = self.workflows(namespace);
        let params = PatchParams::default();
        let patch = Patch::<()>::Json(patch.clone());
        self.call("patch workflow", || api.patch(name, &params, &patch))
            .await
    }

    /// One page of workflow metadata (labels and annotations, never the large status).
    pub async fn list_meta(
        &self,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<ObjectList<WorkflowMeta>> {
        let api = match namespace {
            Some(ns) => self.workflows(ns),
            None => Api::all_with(self.client.clone(), &workflow_resource()),
        };
        self.call("list workflows", || api.list_metadata(params))
            .await
            .map_err(|e| {
                self.classify(
                    e,
                    &Target {
                        namespace: namespace.map(str::to_string),
                        name: None,
                    },
                    "list",
                )
            })
    }

    /// The changes to the workflows a selector matches, metadata only: a list first (each
    /// item, then `InitDone`), then every change. The stream does not end; after a dropped
    /// connection it resumes, or lists again, by itself.
    pub fn watch_meta(
        &self,
        namespace: Option<&str>,
        config: watcher::Config,
    ) -> impl futures::Stream<Item = Result<watcher::Event<WorkflowMeta>, watcher::Error>> + use<>
    {
        let api: Api<WorkflowMeta> = match namespace {
            Some(ns) => self.workflow_metas(ns),
            None => Api::all_with(self.client.clone(), &workflow_resource()),
        };
        watcher::watcher(api, config)
    }

    /// Records a Kubernetes Event on the workflow. Best effort: a failure is logged, never fatal,
    /// since the change itself has already happened.
    pub async fn record_event(
        &self,
        workflow: &ObjectMeta,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let namespace = workflow
            .namespace
            .clone()
            .unwrap_or_else(|| self.namespace.clone());
        let name = workflow.name.clone().unwrap_or_default();
        // Named as kubectl names Events: the object, a dot, a unique suffix.
        let suffix = format!("{:x}", jiff::Timestamp::now().as_nanosecond());
        let event_name: String = format!(
            "{}.{suffix}",
            name.chars()
                .take(253 - 1 - suffix.len())
                .collect::<String>()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(event_name),
                ..Default::default()
            },
            event_time: Some(MicroTime(jiff::Timestamp::now())),
            action: Some(action.to_string()),
            reason: Some(reason.to_string()),
            note: Some(note.chars().take(1024).collect()),
            type_: Some("Normal".to_string()),
            reporting_controller: Some("stagectl.dev/stagectl".to_string()),
            reporting_instance: Some(crate::record::actor()),
            regarding: Some(k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some("argoproj.io/v1alpha1".to_string()),
                kind: Some("Workflow".to_string()),
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                uid: workflow.uid.clone(),
                resource_version: workflow.resource_version.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        // One try only: an Event is not worth delaying the step that already did its job.
        self.requests.fetch_add(1, Ordering::Relaxed);
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => debug!(workflow = %name, reason, "event recorded"),
            Err(e) => {
                warn!(workflow = %name, error = %describe(&e), "could not record an event; the stage change stands")
            }
        }
    }

    /// Maps an API error that the caller does not handle itself to stagectl's error classes,
    /// with a message that says what to do.
    pub fn classify(&self, err: kube::Error, target: &Target, verb: &str) -> Error {
        match &err {
            kube::Error::Api(status) => match status.code {
                404 if status.details.as_ref().is_some_and(|d| !d.name.is_empty()) => {
                    Error::NotFound(format!(
                        "{} not found: check the name and the namespace (-n)",
                        target.describe()
                    ))
                }
                404 => Error::NotFound(format!(
                    "the API server at {} does not serve workflows.argoproj.io/v1alpha1: install Argo Workflows (its CRDs) on this cluster",
                    self.server
                )),
                403 => Error::Forbidden(format!(
                    "{}; grant the stagectl Role of workflow-templates/rbac.yaml to this account \
                     (get, list, watch, patch on workflows.argoproj.io; create on events)",
                    one_line(&status.message)
                )),
                400 => Error::Usage(format!(
                    "the API server rejected the request: {}",
                    one_line(&status.message)
                )),
                401 => Error::Forbidden(format!(
                    "the API server at {} did not accept the credentials (401 Unauthorized): check the kubeconfig's user or the ServiceAccount token",
                    self.server
                )),
                _ => Error::Other(anyhow::anyhow!(
                    "{verb} {}: {}",
                    target.describe(),
                    one_line(&status.message)
                )),
            },
            _ if is_transient(&err) => Error::GaveUp(format!(
                "gave up on {verb} {} after {} requests in {}s: {}; check that the API server at {} is reachable, or raise --timeout",
                target.describe(),
                self.requests(),
                self.timeout.as_secs(),
                describe(&err),
                self.server
            )),
            _ => Error::Other(anyhow::anyhow!(
                "{verb} {}: {}",
                target.describe(),
                describe(&err)
            )),
        }
    }
}

/// What a call acted on, for messages.
#[derive(Debug, Clone)]
pub struct Target {
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Target {
    pub fn workflow(namespace: &str, name: &str) -> Self {
        Self {
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
        }
    }

    fn describe(&self) -> String {
        match (&self.name, &self.namespace) {
            (Some(name), Some(ns)) => format!("workflow {name} in namespace {ns}"),
            (None, Some(ns)) => format!("workflows in namespace {ns}"),
            _ => "workflows in all namespaces".to_string(),
        }
    }
}

/// Errors that can heal by themselves: the connection, throttling, the server's own trouble,
/// an optimistic-concurrency conflict. Never 400/401/403/404/422: repeating cannot change them.
pub fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => {
            status.code == 429
                || status.code >= 500
                || (status.code == 409 && status.reason == "Conflict")
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Whether the API refused a JSON Patch because one of its `test` operations (or another
/// operation) did not apply to the object as it is.
pub fn is_patch_refused(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 422)
}

fn retry_after(err: &kube::Error) -> Option<Duration> {
    match err {
        kube::Error::Api(status) if status.code == 429 => status
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|secs| *secs > 0)
            .map(|secs| Duration::from_secs(u64::from(secs))),
        _ => None,
    }
}

fn config_error(err: kube::config::KubeconfigError) -> Error {
    Error::Usage(format!(
        "cannot use the kubeconfig: {}; check --kubeconfig, KUBECONFIG and --context",
        one_line(&err.to_string())
    ))
}

/// An API error by its server message (kube's own text repeats the whole status); others as
/// they print, on one line.
pub fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} ({})", one_line(&status.message), status.code),
        other => one_line(&other.to_string()),
    }
}

/// Error texts from deep in a stack can span lines; one line per failure is the contract.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
