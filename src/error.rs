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
    /// several candidates). Nothing was written.
    Refused = 3,
    /// The workflow, its namespace, or the Argo Workflow CRD does not exist.
    NotFound = 4,
    /// The credentials may not do this (RBAC), or are not accepted at all.
    Forbidden = 5,
    /// The API server could not be reached, or kept failing, until the timeout.
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
  3  refused: the workflow's state does not allow it (wrong stage, other task); nothing was written
  4  not found: the workflow, its namespace, or the Argo Workflow CRD
  5  forbidden: RBAC does not allow it, or the credentials are not accepted
  6  gave up: the API server was unreachable or kept failing until --timeout
  7  mismatch (verify): the workflow is not at the stage asked for";
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status as u8)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure stagectl reports. Each message is one line that says what was wrong and what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    GaveUp(String),
    #[error("{0}")]
    Mismatch(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Error {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Usage(_) => ExitStatus::Usage,
            Error::Refused(_) => ExitStatus::Refused,
            Error::NotFound(_) => ExitStatus::NotFound,
            Error::Forbidden(_) => ExitStatus::Forbidden,
            Error::GaveUp(_) => ExitStatus::GaveUp,
            Error::Mismatch(_) => ExitStatus::Mismatch,
            Error::Other(_) => ExitStatus::Failure,
        }
    }

    /// A stable name for logs and metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::Refused(_) => "refused",
            Error::NotFound(_) => "not-found",
            Error::Forbidden(_) => "forbidden",
            Error::GaveUp(_) => "gave-up",
            Error::Mismatch(_) => "mismatch",
            Error::Other(_) => "failed",
        }
    }
}
