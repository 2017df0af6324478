//! stagectl: the one place where a play workflow's stage changes.
//!
//! `core` decides (stage machine, label encoding, patches, Argo nodes, the plans of every
//! command) and does no I/O; `cluster` does the Kubernetes I/O, with one retry policy and one
//! compare-and-swap executor; `github` reads GitHub for `reconcile`; each subcommand is one
//! thin module under `commands`.

/// Time budgets of remote calls: deadlines, attempt limits, backoff.
pub(crate) mod budget;
/// Command-line definition and dispatch.
pub(crate) mod cli;
/// Kubernetes I/O: connection, the Workflow calls, the retry policy, the executor, Events.
pub(crate) mod cluster;
/// One module per subcommand.
pub(crate) mod commands;
/// GitHub's REST API for reconcile: pull requests and reviews, conditional and paginated.
pub(crate) mod github;
/// tracing set-up: human logs on a terminal, JSON lines otherwise, always on stderr.
pub(crate) mod logging;
/// Flows several commands share (an event's delivery, for resume and reconcile).
pub(crate) mod operations;
/// stdout rendering: tables, JSON, YAML, names.
pub(crate) mod output;
/// The options every subcommand shares, and what the process learns from its environment.
pub(crate) mod settings;

/// Every decision, as data in and plans out; no I/O (the crate stagectl-core).
use stagectl_core as core;
/// The error type and the exit code each outcome class maps to.
use stagectl_core::error;

/// The process: parse, run, exit code.
pub use cli::main;
/// The User-Agent of every request to the API server (the tests find stagectl's requests in the
/// audit log by it).
pub use cluster::USER_AGENT;
