use std::process::ExitCode;

/// Exit codes, one per outcome class. They are part of the interface: workflow templates
/// (`retryStrategy`), sensors and CI scripts branch on them, so a value never changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// The requested state holds: applied now, or already true (a no-op).
    Success = 0,
    /// Something unexpected: an API error that fits no other class, a bug.
    Failure = 1,
    /// Bad input: flags, arguments, environment or configuration. Nothing was written.
    Usage = 2,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status as u8)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The message says what was wrong and what to do instead.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Error {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Usage(_) => ExitStatus::Usage,
            Error::Other(_) => ExitStatus::Failure,
        }
    }
}
