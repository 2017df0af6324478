//! All Kubernetes I/O: connecting, the Workflow calls stagectl makes under one retry policy,
//! the one compare-and-swap executor, Events, and API errors turned into stagectl's classes.

mod executor;
mod listed;
#[cfg(test)]
mod mock;
mod retry;
mod watch;

pub(crate) use crate::budget::Deadline;
pub use executor::{Operation, Swapped, View, WaitBudget};
pub use retry::CallError;
pub use watch::{Change, Scope};

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{Expression, ObjectList, PartialObjectMeta, Selector};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Config};
use tracing::{debug, warn};

use crate::core::{Observed, one_line};
use crate::error::{Error, Result};

/// What the API server records as the client of every request stagectl makes.
pub const USER_AGENT: &str = concat!("stagectl/", env!("CARGO_PKG_VERSION"));

pub type WorkflowMeta = PartialObjectMeta<DynamicObject>;

/// Workflows per answer of a list (`get --chunk-size` chooses its own).
const LIST_PAGE: u32 = 500;

/// Where to connect and how long each operation may keep trying.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// `--as` and `--as-group`: who the API server is asked to take the request for.
    pub impersonate: Option<String>,
    pub impersonate_groups: Vec<String>,
    pub namespace: Option<String>,
    pub timeout: Duration,
}

/// A connection to one API server, with the namespace commands default to, the time budget of
/// each operation, and counts of what was sent.
pub struct Cluster {
    client: Client,
    pub namespace: String,
    pub server: String,
    timeout: Duration,
    retry: retry::Policy,
    recorder: Recorder,
}

pub fn workflow_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow"),
        "workflows",
    )
}

/// A label selector of equalities, built by kube's own selector type.
pub fn selector(equal: &[(&str, String)]) -> Selector {
    equal
        .iter()
        .map(|(key, value)| Expression::Equal(key.to_string(), value.clone()))
        .collect()
}

impl Cluster {
    /// Loads the configuration the way kubectl does: `--kubeconfig`, else `KUBECONFIG` or
    /// ~/.kube/config, else the pod's in-cluster ServiceAccount; `--context` picks a context.
    /// The namespace is `-n`, else the context's, else (in a pod) the pod's own.
    pub async fn connect(options: &ConnectOptions, actor: &str) -> Result<Self> {
        let kube_options = KubeConfigOptions {
            context: options.context.clone(),
            ..Default::default()
        };
        let mut config = match (&options.kubeconfig, &options.context) {
            (Some(path), _) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                    Error::usage(format!(
                        "cannot read kubeconfig {}: {}; pass a readable file with --kubeconfig",
                        path.display(),
                        one_line(&e.to_string())
                    ))
                    .with_source(e)
                })?;
                Config::from_custom_kubeconfig(kubeconfig, &kube_options)
                    .await
                    .map_err(config_error)?
            }
            (None, Some(_)) => Config::from_kubeconfig(&kube_options).await.map_err(config_error)?,
            (None, None) => Config::infer().await.map_err(|e| {
                Error::usage(format!(
                    "no Kubernetes configuration: {}; set KUBECONFIG, pass --kubeconfig, or run in a pod",
                    one_line(&e.to_string())
                ))
                .with_source(e)
            })?,
        };
        if let Some(user) = &options.impersonate {
            config.auth_info.impersonate = Some(user.clone());
            config.auth_info.impersonate_groups = (!options.impersonate_groups.is_empty())
                .then(|| options.impersonate_groups.clone());
        }
        // A connection that does not open quickly is not going to; a request that opened one
        // but stalls is cut by the retry policy's attempt timeout and sent again.
        config.connect_timeout = Some(crate::budget::CONNECT_TIMEOUT);
        config.read_timeout = None;
        config.write_timeout = None;
        // The one retry policy is ours (`retry`): bounded by --timeout and logged. kube's own
        // would add up to 15 more behind it, each honouring Retry-After without that bound.
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
        let build = |config: Config| {
            Client::try_from(config).map_err(|e| {
                Error::usage(format!(
                    "cannot build a client for {server}: {}",
                    one_line(&e.to_string())
                ))
                .with_source(e)
            })
        };
        // The same server without credentials: after a 401, the retry policy asks /readyz
        // whether the refusal could come from a server still starting.
        let anonymous = config.clone();
        let client = build(config)?;
        Ok(Self::assemble(
            client,
            anonymous,
            namespace,
            options.timeout,
            actor,
        ))
    }

    fn assemble(
        client: Client,
        anonymous: Config,
        namespace: String,
        timeout: Duration,
        actor: &str,
    ) -> Self {
        let server = anonymous.cluster_url.to_string();
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "stagectl.dev/stagectl".to_string(),
                instance: Some(actor.to_string()),
            },
        );
        Self {
            retry: retry::Policy::new(client.clone(), anonymous, server.clone()),
            client,
            namespace,
            server,
            timeout,
            recorder,
        }
    }

    /// A Cluster over a client of the tests' own (an in-process server), in namespace "ns".
    #[cfg(test)]
    fn with_client(client: Client, config: Config, timeout: Duration) -> Self {
        Self::assemble(client, config, "ns".to_string(), timeout, "test")
    }

    pub fn workflows(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &workflow_resource())
    }

    /// Workflows as metadata only: requests made through it never transfer the (large) status.
    pub fn workflow_metas(&self, namespace: &str) -> Api<WorkflowMeta> {
        Api::namespaced_with(self.client.clone(), namespace, &workflow_resource())
    }

    /// The time budget of one operation, starting now.
    pub fn budget(&self) -> Deadline {
        Deadline::after(self.timeout)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Requests sent so far, retries and readiness probes included.
    pub fn requests(&self) -> u32 {
        self.retry.requests()
    }

    /// Attempts that failed transiently and were made again.
    pub fn retries(&self) -> u32 {
        self.retry.retries()
    }

    /// Reads one workflow: its metadata only, or the whole object with its status.
    pub async fn read(
        &self,
        namespace: &str,
        name: &str,
        view: View,
        budget: Deadline,
    ) -> Result<Observed> {
        let target = Target::workflow(namespace, name);
        let api = self.workflows(namespace);
        let read = match view {
            View::Metadata => self
                .retry
                .call("get workflow", budget, || api.get_metadata(name))
                .await
                .map(metadata_only),
            View::Whole => self
                .retry
                .call("get workflow", budget, || api.get(name))
                .await
                .map(observed),
        };
        read.map_err(|e| self.classify(e, &target, "get", budget))
    }

    /// Sends a JSON Patch and returns the workflow as committed, or the raw API error, so that
    /// the executor can tell a failed `test` (422) from the rest.
    pub async fn patch(
        &self,
        namespace: &str,
        name: &str,
        view: View,
        patch: &json_patch::Patch,
        budget: Deadline,
    ) -> Result<Observed, CallError> {
        let api = self.workflows(namespace);
        let params = PatchParams::default();
        let patch = Patch::<()>::Json(patch.clone());
        match view {
            View::Metadata => self
                .retry
                .call("patch workflow", budget, || {
                    api.patch_metadata(name, &params, &patch)
                })
                .await
                .map(metadata_only),
            View::Whole => self
                .retry
                .call("patch workflow", budget, || {
                    api.patch(name, &params, &patch)
                })
                .await
                .map(observed),
        }
    }

    /// One page of workflow metadata (labels and annotations, never the large status).
    async fn list_meta(
        &self,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<ObjectList<WorkflowMeta>> {
        let api = match namespace {
            Some(ns) => self.workflows(ns),
            None => Api::all_with(self.client.clone(), &workflow_resource()),
        };
        let budget = self.budget();
        self.retry
            .call("list workflows", budget, || {
                let request = kube::core::Request::new(api.resource_url())
                    .list_metadata(params)
                    .map_err(kube::Error::BuildRequest);
                async move {
                    let mut request = request?;
                    request.extensions_mut().insert("list_metadata");
                    let list = self
                        .client
                        .request::<ObjectList<listed::ListedItem>>(request)
                        .await?;
                    Ok(listed::into_partial_list(list))
                }
            })
            .await
            .map_err(|e| self.classify(e, &Target::workflows(namespace), "list", budget))
    }

    /// What `read` makes of the metadata of every workflow with these labels.
    pub async fn list_labelled<T>(
        &self,
        namespace: Option<&str>,
        labels: &[(&str, String)],
        read: impl FnMut(&ObjectMeta) -> T,
    ) -> Result<Vec<T>> {
        self.list_pages(namespace, &selector(labels).to_string(), LIST_PAGE, read)
            .await
    }

    /// What `read` makes of the metadata of every workflow a label selector (as kubectl takes
    /// it) matches, in pages of `chunk`: a large list comes as several answers rather than one
    /// huge one, and each page's metadata is dropped once read, so that a run holds one page of
    /// it, not the whole list.
    pub async fn list_pages<T>(
        &self,
        namespace: Option<&str>,
        selector: &str,
        chunk: u32,
        mut read: impl FnMut(&ObjectMeta) -> T,
    ) -> Result<Vec<T>> {
        let mut params = ListParams::default().labels(selector).limit(chunk);
        let mut all = Vec::new();
        loop {
            let page = self.list_meta(namespace, &params).await?;
            all.extend(page.items.iter().map(|item| read(&item.metadata)));
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(token.as_str()),
                None => return Ok(all),
            }
        }
    }

    /// Every workflow with these labels, whole (status too), from one list: what an executor's
    /// read would have given for each, so that a plan made on one needs no read of its own.
    pub async fn list_labelled_whole(
        &self,
        namespace: &str,
        labels: &[(&str, String)],
    ) -> Result<Vec<Observed>> {
        let params = ListParams::default().labels_from(&selector(labels));
        let api = self.workflows(namespace);
        let budget = self.budget();
        self.retry
            .call("list workflows", budget, || api.list(&params))
            .await
            .map(|list| list.items.into_iter().map(observed).collect())
            .map_err(|e| self.classify(e, &Target::workflows(Some(namespace)), "list", budget))
    }

    /// The text under `key` of ConfigMap `name`, and the resourceVersion it was read at; None
    /// when there is no such ConfigMap yet.
    pub async fn read_config_map(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<Option<(String, String)>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let budget = self.budget();
        match self
            .retry
            .call("get configmap", budget, || api.get_opt(name))
            .await
        {
            Ok(found) => Ok(found.map(|map| {
                let text = map
                    .data
                    .and_then(|mut data| data.remove(key))
                    .unwrap_or_default();
                (text, map.metadata.resource_version.unwrap_or_default())
            })),
            Err(failure) => Err(self.config_map_error(failure, namespace, name, "get", budget)),
        }
    }

    /// Writes `value` under `key` of ConfigMap `name`: over the one read at `resource_version`,
    /// or as a new one. Another writer since (409) wins: its content is as recent as ours.
    pub async fn write_config_map(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: String,
        resource_version: Option<String>,
    ) -> Result<()> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                resource_version: resource_version.clone(),
                labels: Some(
                    [(
                        "app.kubernetes.io/part-of".to_string(),
                        "stagectl".to_string(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            data: Some([(key.to_string(), value)].into()),
            ..ConfigMap::default()
        };
        let budget = self.budget();
        let params = PostParams::default();
        let written = match resource_version {
            Some(_) => {
                self.retry
                    .call("replace configmap", budget, || {
                        api.replace(name, &params, &map)
                    })
                    .await
            }
            None => {
                self.retry
                    .call("create configmap", budget, || api.create(&params, &map))
                    .await
            }
        };
        match written {
            Ok(_) => Ok(()),
            Err(CallError {
                error: kube::Error::Api(status),
                ..
            }) if status.code == 409 => {
                debug!(
                    name,
                    "another run wrote the ConfigMap first; keeping its content"
                );
                Ok(())
            }
            Err(failure) => Err(self.config_map_error(failure, namespace, name, "write", budget)),
        }
    }

    fn config_map_error(
        &self,
        failure: CallError,
        namespace: &str,
        name: &str,
        verb: &str,
        budget: Deadline,
    ) -> Error {
        match &failure.error {
            kube::Error::Api(status) if status.code == 403 => Error::forbidden(format!(
                "{}; grant get, create and update on configmaps (the stagectl-reconcile Role of workflow-templates/rbac.yaml), or pass --cache-configmap ''",
                one_line(&status.message)
            )),
            _ if failure.transient => Error::gave_up(format!(
                "gave up on {verb} configmap {name} in namespace {namespace} after {}s: {}; check that the API server at {} is reachable",
                budget.spent().as_secs(),
                describe(&failure.error),
                self.server
            )),
            other => Error::failed(format!(
                "{verb} configmap {name} in namespace {namespace}: {}",
                describe(other)
            )),
        }
        .with_source(failure.error)
    }

    /// Whether a watch's failure to start may heal by itself, with time left to try again.
    fn may_retry_watch(&self, err: &kube::Error, budget: Deadline) -> bool {
        retry::is_transient(err) && !budget.passed()
    }

    /// A watch that could not start, as stagectl reports it.
    fn watch_error(&self, error: kube::Error, target: &Target, budget: Deadline) -> Error {
        let transient = retry::is_transient(&error);
        self.classify(CallError { error, transient }, target, "watch", budget)
    }

    /// Records a Kubernetes Event on the workflow. Best effort: a failure is logged, never fatal,
    /// since the change itself has already happened; and one try only, as an Event is not worth
    /// delaying the step that did its job.
    pub async fn record_event(
        &self,
        workflow: &ObjectMeta,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let name = workflow.name.clone().unwrap_or_default();
        let reference = ObjectReference {
            api_version: Some("argoproj.io/v1alpha1".to_string()),
            kind: Some("Workflow".to_string()),
            name: Some(name.clone()),
            namespace: Some(
                workflow
                    .namespace
                    .clone()
                    .unwrap_or_else(|| self.namespace.clone()),
            ),
            uid: workflow.uid.clone(),
            resource_version: workflow.resource_version.clone(),
            ..Default::default()
        };
        let event = Event {
            type_: EventType::Normal,
            reason: reason.to_string(),
            note: Some(note.chars().take(1024).collect()),
            action: action.to_string(),
            secondary: None,
        };
        self.retry.count_request();
        match self.recorder.publish(&event, &reference).await {
            Ok(()) => debug!(workflow = %name, reason, "event recorded"),
            Err(e) => {
                warn!(workflow = %name, error = %describe(&e), "could not record an event; the stage change stands")
            }
        }
    }

    /// Maps an API error that the caller does not handle itself to stagectl's error classes,
    /// with a message that says what to do, keeping the error as its source.
    pub fn classify(
        &self,
        failure: CallError,
        target: &Target,
        verb: &str,
        budget: Deadline,
    ) -> Error {
        let CallError {
            error: err,
            transient,
        } = failure;
        if transient {
            return self.gave_up(&err, target, verb, budget).with_source(err);
        }
        if let Some(message) = admission_refusal(&err) {
            return Error::refused(format!(
                "the API server's stage-machine policy refused to {verb} {}: {}",
                target.describe(),
                one_line(message)
            ))
            .with_source(err);
        }
        let error = match &err {
            kube::Error::Api(status) => match status.code {
                404 if status.details.as_ref().is_some_and(|d| !d.name.is_empty()) => {
                    Error::not_found(format!(
                        "{} not found: check the name and the namespace (-n)",
                        target.describe()
                    ))
                }
                404 => Error::not_found(format!(
                    "the API server at {} does not serve workflows.argoproj.io/v1alpha1: install Argo Workflows (its CRDs) on this cluster",
                    self.server
                )),
                403 => Error::forbidden(format!(
                    "{}; grant the stagectl Role of workflow-templates/rbac.yaml to this account \
                     (get, list, watch, patch on workflows.argoproj.io; create on events)",
                    one_line(&status.message)
                )),
                400 => Error::usage(format!(
                    "the API server rejected the request: {}",
                    one_line(&status.message)
                )),
                401 => Error::forbidden(format!(
                    "the API server at {} did not accept the credentials (401 Unauthorized): check the kubeconfig's user or the ServiceAccount token",
                    self.server
                )),
                _ => Error::failed(format!(
                    "{verb} {}: {}",
                    target.describe(),
                    one_line(&status.message)
                )),
            },
            _ => Error::failed(format!("{verb} {}: {}", target.describe(), describe(&err))),
        };
        error.with_source(err)
    }

    fn gave_up(&self, err: &kube::Error, target: &Target, verb: &str, budget: Deadline) -> Error {
        Error::gave_up(format!(
            "gave up on {verb} {} after {} requests in {}s: {}; check that the API server at {} is reachable, or raise --timeout",
            target.describe(),
            self.requests(),
            budget.spent().as_secs(),
            describe(err),
            self.server
        ))
    }
}

fn metadata_only(workflow: WorkflowMeta) -> Observed {
    Observed {
        meta: workflow.metadata,
        status: None,
    }
}

fn observed(workflow: DynamicObject) -> Observed {
    Observed {
        meta: workflow.metadata,
        status: workflow.data.get("status").cloned(),
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

    /// The workflows of a namespace, or of all.
    pub fn workflows(namespace: Option<&str>) -> Self {
        Self {
            namespace: namespace.map(str::to_string),
            name: None,
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

fn config_error(err: kube::config::KubeconfigError) -> Error {
    Error::usage(format!(
        "cannot use the kubeconfig: {}; check --kubeconfig, KUBECONFIG and --context",
        one_line(&err.to_string())
    ))
    .with_source(err)
}

/// The message of a write that an admission policy denied (the stage-machine policy of
/// workflow-templates/): the API server says "... denied request: <the policy's message>", and
/// that message says what was refused and what is legal. Denied again however often sent. A
/// policy's own validations answer 403; a binding that cannot be evaluated (its parameters
/// missing) 422, which must not be taken for a failed `test` of the patch.
pub fn admission_refusal(err: &kube::Error) -> Option<&str> {
    let kube::Error::Api(status) = err else {
        return None;
    };
    let (before, message) = status.message.split_once(" denied request: ")?;
    (matches!(status.code, 403 | 422) && before.contains("ValidatingAdmissionPolicy"))
        .then_some(message)
}

/// An API error by its server message (kube's own text repeats the whole status); others as
/// they print, on one line.
pub fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} ({})", one_line(&status.message), status.code),
        other => one_line(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str) -> kube::Error {
        let status: kube::core::Status =
            serde_json::from_value(serde_json::json!({"code": code, "message": message})).unwrap();
        kube::Error::Api(Box::new(status))
    }

    /// The API server's words for a denial by a policy, as it answered on the control plane.
    #[test]
    fn a_policy_denial_is_told_from_rbac_and_from_a_failed_test() {
        let denied = "workflows.argoproj.io \"play-1\" is forbidden: ValidatingAdmissionPolicy \
            'stagectl-stage-machine' with binding 'stagectl-stage-machine.argo' denied request: \
            current-stage pending → completed is not a move of the stage machine";
        assert_eq!(
            admission_refusal(&api_error(403, denied)),
            Some("current-stage pending → completed is not a move of the stage machine")
        );
        let unevaluable = "The workflows \"play-1\" is invalid: : ValidatingAdmissionPolicy \
            'stagectl-stage-machine' with binding 'b' denied request: failed to configure binding: \
            no params found for policy binding with `Deny` parameterNotFoundAction";
        assert!(admission_refusal(&api_error(422, unevaluable)).is_some());
        let rbac = "workflows.argoproj.io \"play-1\" is forbidden: User \"x\" cannot patch \
            resource \"workflows\"";
        assert_eq!(admission_refusal(&api_error(403, rbac)), None);
        let failed_test = "the server rejected our request due to an error in our request";
        assert_eq!(admission_refusal(&api_error(422, failed_test)), None);
    }
}
