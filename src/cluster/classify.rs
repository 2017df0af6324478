//! API errors as stagectl reports them: each class with its exit code and a line that says
//! what to do.

use super::{CallError, Cluster, Deadline, WorkflowRef, retry};
use crate::core::one_line;
use crate::error::Error;

impl Cluster {
    /// Whether a watch's failure to start may heal by itself, with time left to try again.
    pub(super) fn may_retry_watch(&self, err: &kube::Error, budget: Deadline) -> bool {
        retry::is_transient(err) && !budget.passed()
    }

    /// A watch that could not start, as stagectl reports it.
    pub(super) fn watch_error(
        &self,
        error: kube::Error,
        target: &Target,
        budget: Deadline,
    ) -> Error {
        let transient = retry::is_transient(&error);
        self.classify(CallError { error, transient }, target, "watch", budget)
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

    pub(super) fn gave_up(
        &self,
        err: &kube::Error,
        target: &Target,
        verb: &str,
        budget: Deadline,
    ) -> Error {
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

/// What a call acted on, for messages.
#[derive(Debug, Clone)]
pub struct Target {
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Target {
    pub fn workflow(workflow: WorkflowRef<'_>) -> Self {
        Self {
            namespace: Some(workflow.namespace.to_string()),
            name: Some(workflow.name.to_string()),
        }
    }

    /// The workflows of a namespace, or of all.
    pub fn workflows(namespace: Option<&str>) -> Self {
        Self {
            namespace: namespace.map(str::to_string),
            name: None,
        }
    }

    pub(super) fn describe(&self) -> String {
        match (&self.name, &self.namespace) {
            (Some(name), Some(ns)) => format!("workflow {name} in namespace {ns}"),
            (None, Some(ns)) => format!("workflows in namespace {ns}"),
            _ => "workflows in all namespaces".to_string(),
        }
    }
}

pub(super) fn config_error(err: kube::config::KubeconfigError) -> Error {
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
