//! Every decision stagectl makes, as plain data in and a typed plan out: no Kubernetes client,
//! no runtime, no clock and no environment. Time and the actor come in as arguments, so each
//! decision is unit-tested without a server. A crate of its own so that the compiler holds it
//! to that: its Cargo.toml has no kube, no tokio and no HTTP stack.

/// Whether a directory of manifests agrees with a pipeline definition.
pub mod agreement;
/// Argo node status: the suspend node of a stage, and resuming it as `argo resume` does.
pub mod argo;
/// Set and rollback: from a workflow's metadata to one compare-and-swap.
pub mod change;
/// One webhook delivery, as recorded on a workflow.
pub mod delivery;
/// The error type every layer reports, and the exit code each class of failure maps to.
pub mod error;
/// The GitHub events a wait can name, and the one rule that says an event releases a wait.
pub mod event;
/// What GitHub says about a task's pull request, and whether a wait's event has happened.
pub mod github;
/// Label and annotation keys, and validation and encoding of the values that go into them.
pub mod labels;
/// Early events: latches, and which deliveries a workflow has already seen.
pub mod latch;
/// A play's passes: the pass it is in, and which events belong to it.
pub mod pass;
/// JSON Patch operations, and the one patch that changes a stage.
pub mod patch;
/// A pipeline definition: the stages and the event each wait is released by.
pub mod pipeline;
/// Reconcile: which plays wait, and what GitHub's answers mean for each.
pub mod reconcile;
/// A Workflow's stage record (stage, task, repository, history) read from its metadata.
pub mod record;
/// The manifests a pipeline implies (its Sensors), rendered as text.
pub mod render;
/// Resume: which play an event is for, and what it does to that play.
pub mod resume;
/// The stage order and the decisions it implies.
pub mod stage;

#[cfg(test)]
mod fixtures;

pub use error::{Error, Result};
use json_patch::Patch;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// A Workflow as read, or as the server committed it: its metadata, and its status when the
/// read asked for the whole object.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub meta: ObjectMeta,
    pub status: Option<Value>,
}

/// What a plan asks of the executor next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<T> {
    /// Send this patch; if the server applies it, the result is `then`. If one of its `test`s
    /// fails, read the workflow again and plan again.
    Write { patch: Patch, then: T },
    /// Nothing to write: the requested state already holds.
    Done(T),
    /// The workflow's state forbids it; the text says why and what to do.
    Refuse(String),
    /// It cannot be decided, for the reason and with the exit code the error carries (a stage
    /// the play's pipeline does not know; a definition the play carries that does not read).
    Fail(error::Kind, String),
    /// Not yet: read again in a moment. The text says what is awaited, for when the wait runs out.
    Wait(String),
}

/// Error texts from deep in a stack can span lines; one line per failure is the contract.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
