//! stagectl: the one place where a play workflow's stage changes.
//!
//! `core` decides (stage machine, label encoding, patches, Argo nodes, the plans of every
//! command) and does no I/O; `cluster` does the Kubernetes I/O, with one retry policy and one
//! compare-and-swap executor; `github` reads GitHub for `reconcile`; each subcommand is one
//! thin module under `commands`.

/// Command-line definition and dispatch.
pub mod cli;
/// Kubernetes I/O: connection, the Workflow calls, the retry policy, the executor, Events.
pub mod cluster;
/// One module per subcommand.
pub mod commands;
/// Every decision, as data in and plans out; no I/O.
pub mod core;
/// The error type and the exit code each outcome class maps to.
pub mod error;
/// GitHub's REST API for reconcile: pull requests and reviews, conditional and paginated.
pub mod github;
/// tracing set-up: human logs on a terminal, JSON lines otherwise, always on stderr.
pub mod logging;
/// stdout rendering: tables, JSON, YAML, names.
pub mod output;
/// The options every subcommand shares, and what the process learns from its environment.
pub mod settings;

pub use error::{Error, Result};
