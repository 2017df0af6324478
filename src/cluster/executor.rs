//! The one compare-and-swap loop: plan → patch → on a refused patch, read and plan again.
//!
//! Plans come from `core` and carry their own `test` operations, so a patch lands only on the
//! workflow it was planned for. The server's 422 for a failed `test` is the loop's signal that
//! the workflow moved; anything else goes through the retry policy or ends the operation.

use std::time::Duration;

use tracing::debug;

use super::{Cluster, Deadline, Target, describe};
use crate::core::{Observed, Step};
use crate::error::{Error, Kind, Result};

/// How much of a workflow an operation reads and gets back from its patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Labels and annotations: all set and rollback decide on.
    Metadata,
    /// With the status: its nodes, for resume.
    Whole,
}

/// How long an operation may wait for the workflow to get where its plan can act, and the
/// flag that sets it (for the message when the wait runs out).
#[derive(Debug, Clone, Copy)]
pub struct WaitBudget {
    pub limit: Duration,
    pub flag: &'static str,
}

/// One compare-and-swap on one workflow.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub view: View,
    /// None: a plan that waits is a bug of the caller, reported as such.
    pub wait: Option<WaitBudget>,
}

/// What the operation did.
#[derive(Debug)]
pub enum Swapped<T> {
    /// The patch was applied; the workflow as committed.
    Written { then: T, committed: Box<Observed> },
    /// Nothing was written: the state already held.
    Unchanged(T),
}

/// Patches refused because the workflow changed since it was read, before stagectl stops: each
/// is followed by a fresh read, so more than this means something keeps fighting it.
const MAX_REFUSED: usize = 10;
/// How often a waiting plan reads the workflow again.
const WAIT_INTERVAL: Duration = Duration::from_millis(500);

impl Cluster {
    /// Runs `plan` against the workflow until it is done: `unread` is the plan made without
    /// reading (the hot path), if the caller has one. The API calls of the operation share one
    /// budget of --timeout; a wait has its own, and each read after it starts a fresh one.
    pub async fn compare_and_swap<T>(
        &self,
        op: Operation<'_>,
        unread: Option<Step<T>>,
        mut plan: impl FnMut(&Observed) -> Step<T>,
    ) -> Result<Swapped<T>> {
        let target = Target::workflow(op.namespace, op.name);
        let mut budget = self.budget();
        let wait_deadline = op.wait.map(|wait| Deadline::after(wait.limit));
        let mut refused = 0;
        let mut waiting = false;
        let mut step = unread;
        loop {
            let current = match step.take() {
                Some(step) => step,
                None => match self.read(op.namespace, op.name, op.view, budget).await {
                    Ok(observed) => plan(&observed),
                    // A read that found no answer within --timeout while the wait has time
                    // left is one more reason to wait, not the end of it: the wait's budget
                    // is the one that says when to stop.
                    Err(err)
                        if waiting
                            && err.kind == Kind::GaveUp
                            && wait_deadline.is_some_and(|d| d.remaining() >= WAIT_INTERVAL) =>
                    {
                        debug!(error = %err, "a read while waiting found no answer; waiting on");
                        tokio::time::sleep(WAIT_INTERVAL).await;
                        budget = self.budget();
                        continue;
                    }
                    Err(err) => return Err(err),
                },
            };
            match current {
                Step::Done(then) => return Ok(Swapped::Unchanged(then)),
                Step::Refuse(why) => return Err(Error::refused(why)),
                Step::Wait(what) => {
                    let (Some(wait), Some(deadline)) = (op.wait, wait_deadline) else {
                        return Err(Error::failed(format!(
                            "workflow {}: {what}, and this operation does not wait",
                            op.name
                        )));
                    };
                    if deadline.remaining() < WAIT_INTERVAL {
                        return Err(Error::gave_up(format!(
                            "workflow {} {what}: gave up after waiting {}s; raise {} to wait longer",
                            op.name,
                            wait.limit.as_secs(),
                            wait.flag
                        )));
                    }
                    debug!(what = %what, "waiting");
                    waiting = true;
                    tokio::time::sleep(WAIT_INTERVAL).await;
                    budget = self.budget();
                }
                Step::Write { patch, then } => match self
                    .patch(op.namespace, op.name, op.view, &patch, budget)
                    .await
                {
                    Ok(committed) => {
                        return Ok(Swapped::Written {
                            then,
                            committed: Box::new(committed),
                        });
                    }
                    Err(failure) if is_patch_refused(&failure.error) => {
                        refused += 1;
                        debug!(error = %describe(&failure.error), refused, "patch refused; reading the workflow again");
                        if refused >= MAX_REFUSED {
                            return Err(Error::gave_up(format!(
                                "workflow {} kept changing while stagectl tried to change it ({refused} patches refused); run the command again",
                                op.name
                            ))
                            .with_source(failure.error));
                        }
                    }
                    Err(failure) => return Err(self.classify(failure, &target, "patch", budget)),
                },
            }
        }
    }
}

/// Whether the API refused a JSON Patch because one of its `test` operations (or another
/// operation) did not apply to the object as it is; not an admission policy's denial, which
/// reading again cannot change.
fn is_patch_refused(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 422)
        && super::admission_refusal(err).is_none()
}
