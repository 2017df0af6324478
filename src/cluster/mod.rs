//! All Kubernetes I/O: connecting, the Workflow calls stagectl makes under one retry policy,
//! the one compare-and-swap executor, Events, and API errors turned into stagectl's classes.

mod classify;
mod config_map;
mod events;
mod executor;
mod listed;
#[cfg(test)]
mod mock;
mod retry;
mod watch;

pub(crate) use crate::budget::Deadline;
use classify::config_error;
pub use classify::{Target, admission_refusal, describe};
pub use executor::{Operation, Swapped, View, WaitBudget};
pub use retry::CallError;
pub use watch::{Change, Scope};

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{Expression, ObjectList, PartialObjectMeta, Selector};
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, Config};

use crate::core::{Observed, one_line};
use crate::error::{Error, Result};

/// What the API server records as the client of every request stagectl makes.
pub const USER_AGENT: &str = concat!("stagectl/", env!("CARGO_PKG_VERSION"));

pub type WorkflowMeta = PartialObjectMeta<DynamicObject>;

/// Workflows per answer of a list (`get --chunk-size` chooses its own).
const LIST_PAGE: u32 = 500;

/// One workflow: the namespace and the name every call on it needs together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkflowRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
}

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
        workflow: WorkflowRef<'_>,
        view: View,
        budget: Deadline,
    ) -> Result<Observed> {
        let WorkflowRef { namespace, name } = workflow;
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
        read.map_err(|e| self.classify(e, &Target::workflow(workflow), "get", budget))
    }

    /// Sends a JSON Patch and returns the workflow as committed, or the raw API error, so that
    /// the executor can tell a failed `test` (422) from the rest.
    pub async fn patch(
        &self,
        workflow: WorkflowRef<'_>,
        view: View,
        patch: &json_patch::Patch,
        budget: Deadline,
    ) -> Result<Observed, CallError> {
        let WorkflowRef { namespace, name } = workflow;
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
            'stagectl-stage-machine-play' with binding 'stagectl-stage-machine-play.argo' denied request: \
            current-stage pending → completed is not a move of the stage machine";
        assert_eq!(
            admission_refusal(&api_error(403, denied)),
            Some("current-stage pending → completed is not a move of the stage machine")
        );
        let unevaluable = "The workflows \"play-1\" is invalid: : ValidatingAdmissionPolicy \
            'stagectl-stage-machine-play' with binding 'b' denied request: failed to configure binding: \
            no params found for policy binding with `Deny` parameterNotFoundAction";
        assert!(admission_refusal(&api_error(422, unevaluable)).is_some());
        let rbac = "workflows.argoproj.io \"play-1\" is forbidden: User \"x\" cannot patch \
            resource \"workflows\"";
        assert_eq!(admission_refusal(&api_error(403, rbac)), None);
        let failed_test = "the server rejected our request due to an error in our request";
        assert_eq!(admission_refusal(&api_error(422, failed_test)), None);
    }
}
