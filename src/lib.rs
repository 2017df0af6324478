//! stagectl: the one place where a play workflow's stage changes.
//!
//! The pure modules decide (stage machine, label encoding, patch building); the `kube` module
//! does the I/O; each subcommand is one module under `commands`.

/// Command-line definition and dispatch.
pub mod cli;
/// The error type and the exit code each outcome class maps to.
pub mod error;
/// tracing set-up: human logs on a terminal, JSON lines otherwise, always on stderr.
pub mod logging;

pub use error::{Error, Result};
