use std::process::ExitCode;

/// Exit codes, one per outcome class. They are part of the interface: workflow templates
/// (`retryStrategy` expressions), sensors and CI scripts branch on them, so a value never
/// changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// The requested state holds: applied now, or already true (a no-op).
    Success = 0,
    /// Something unexpected: an API error that fits no other class, a bug.
    Failure = 1,
    /// Bad input: flags, arguments, environment or configuration. Nothing was written.
    Usage = 2,
    /// The workflow's state does not allow the request (wrong stage, another task's workflow,
    /// several candidates), or an admission policy (the stage-machine policy) refused the
    /// write. Nothing was written.
    Refused = 3,
    /// The workflow, its namespace, or the Argo Workflow CRD does not exist.
    NotFound = 4,
    /// The credentials may not do this (RBAC), or are not accepted at all.
    Forbidden = 5,
    /// The API server could not be reached, kept failing until --timeout, or a wait ran out.
    GaveUp = 6,
    /// `verify`: the workflow is not at the stage (or not of the task) asked for.
    Mismatch = 7,
}

impl ExitStatus {
    /// The table printed by `--help` and kept in README.md.
    pub const TABLE: &'static str = "\
Exit codes:
  0  success: the requested state holds (applied now, or already true)
  1  unexpected failure (an API error of no other class)
  2  bad input (flags, arguments, environment, kubeconfig); nothing was written
  3  refused: the workflow's state does not allow it (wrong stage, other task), or the API
     server's stage-machine policy refused the write; nothing was written
  4  not found: the workflow, its namespace, or the Argo Workflow CRD
  5  forbidden: RBAC does not allow it, or the credentials are not accepted
  6  gave up: the API server was unreachable or kept failing until --timeout, or a wait ran out;
     for reconcile, GitHub was unreachable or its rate limit used up (nothing written)
  7  mismatch (verify): the workflow is not at the stage asked for";
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status as u8)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The class of a failure: it decides the exit code, and names the outcome in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Usage,
    Refused,
    NotFound,
    Forbidden,
    GaveUp,
    Mismatch,
    Failed,
}

/// Every failure stagectl reports: its class, one line that says what was wrong and what to do
/// about it, and the error underneath (an API error, an I/O error) for logs and `{:#}`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: Kind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(Kind::Refused, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Kind::Forbidden, message)
    }

    pub fn gave_up(message: impl Into<String>) -> Self {
        Self::new(Kind::GaveUp, message)
    }

    pub fn mismatch(message: impl Into<String>) -> Self {
        Self::new(Kind::Mismatch, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn exit_status(&self) -> ExitStatus {
        match self.kind {
            Kind::Usage => ExitStatus::Usage,
            Kind::Refused => ExitStatus::Refused,
            Kind::NotFound => ExitStatus::NotFound,
            Kind::Forbidden => ExitStatus::Forbidden,
            Kind::GaveUp => ExitStatus::GaveUp,
            Kind::Mismatch => ExitStatus::Mismatch,
            Kind::Failed => ExitStatus::Failure,
        }
    }

    /// A stable name for logs and metrics.
    pub fn outcome(&self) -> &'static str {
        match self.kind {
            Kind::Usage => "usage",
            Kind::Refused => "refused",
            Kind::NotFound => "not-found",
            Kind::Forbidden => "forbidden",
            Kind::GaveUp => "gave-up",
            Kind::Mismatch => "mismatch",
            Kind::Failed => "failed",
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(err: anyhow::Error) -> Self {
        Self::failed(crate::core::one_line(&format!("{err:#}")))
    }
}
