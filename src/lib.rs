//! stagectl: the one place where a play workflow's stage changes.
//!
//! The pure modules decide (stage machine, label encoding, patch building); the `kube` module
//! does the I/O; each subcommand is one module under `commands`.

/// Argo node status: the suspend node of a stage, and resuming it as `argo resume` does.
pub mod argo;
/// Command-line definition and dispatch.
pub mod cli;
/// Kubernetes I/O: connection, Workflow calls, retries, API errors to error classes.
pub mod cluster;
/// One module per subcommand.
pub mod commands;
/// The error type and the exit code each outcome class maps to.
pub mod error;
/// Label and annotation keys, and validation and encoding of the values that go into them.
pub mod labels;
/// Early events: latches, and which deliveries a workflow has already seen.
pub mod latch;
/// tracing set-up: human logs on a terminal, JSON lines otherwise, always on stderr.
pub mod logging;
/// stdout rendering: tables, JSON, YAML, names.
pub mod output;
/// JSON Patches that change a stage as one compare-and-swap.
pub mod patch;
/// A Workflow's stage record (stage, task, repository, history) read from its metadata.
pub mod record;
/// The stage order and the decisions it implies.
pub mod stage;
/// Applying a stage change as a compare-and-swap, for set and rollback.
pub mod transition;

pub use error::{Error, Result};
