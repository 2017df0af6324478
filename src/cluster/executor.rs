//! The one compare-and-swap loop: plan → patch → on a refused patch, read and plan again.
//!
//! Plans come from `core` and carry their own `test` operations, so a patch lands only on the
//! workflow it was planned for. The server's 422 for a failed `test` is the loop's signal that
//! the workflow moved; anything else goes through the retry policy or ends the operation.

use std::time::Duration;

use tracing::debug;

use super::{Cluster, Deadline, Target, WorkflowRef, describe};
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
    pub workflow: WorkflowRef<'a>,
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
        let target = Target::workflow(op.workflow);
        let mut budget = self.budget();
        let wait_deadline = op.wait.map(|wait| Deadline::after(wait.limit));
        let mut refused = 0;
        let mut waiting = false;
        let mut step = unread;
        loop {
            let current = match step.take() {
                Some(step) => step,
                None => match self.read(op.workflow, op.view, budget).await {
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
                Step::Fail(kind, why) => return Err(Error::new(kind, why)),
                Step::Wait(what) => {
                    may_wait(&op, wait_deadline, &what)?;
                    debug!(what = %what, "waiting");
                    waiting = true;
                    tokio::time::sleep(WAIT_INTERVAL).await;
                    budget = self.budget();
                }
                Step::Write { patch, then } => match self
                    .patch(op.workflow, op.view, &patch, budget)
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
                                op.workflow.name
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

/// Whether a plan that waits for `what` may wait one more interval: only an operation with a
/// wait budget, and only while the budget lasts.
fn may_wait(op: &Operation<'_>, deadline: Option<Deadline>, what: &str) -> Result<()> {
    let (Some(wait), Some(deadline)) = (op.wait, deadline) else {
        return Err(Error::failed(format!(
            "workflow {}: {what}, and this operation does not wait",
            op.workflow.name
        )));
    };
    if deadline.remaining() < WAIT_INTERVAL {
        return Err(Error::gave_up(format!(
            "workflow {} {what}: gave up after waiting {}s; raise {} to wait longer",
            op.workflow.name,
            wait.limit.as_secs(),
            wait.flag
        )));
    }
    Ok(())
}

/// Whether the API refused a JSON Patch because one of its `test` operations (or another
/// operation) did not apply to the object as it is; not an admission policy's denial, which
/// reading again cannot change.
fn is_patch_refused(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 422)
        && super::admission_refusal(err).is_none()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use json_patch::Patch;
    use serde_json::json;

    use super::*;
    use crate::cluster::mock::{self, Answer};

    const OPERATION: Operation<'static> = Operation {
        workflow: WorkflowRef {
            namespace: "ns",
            name: "play",
        },
        view: View::Metadata,
        wait: None,
    };

    /// The compare-and-swap of a step forward: the stage tested and replaced in one patch.
    fn step(from: &str, to: &str) -> Patch {
        serde_json::from_value(json!([
            {"op": "test", "path": "/metadata/labels/current-stage", "value": from},
            {"op": "replace", "path": "/metadata/labels/current-stage", "value": to},
        ]))
        .unwrap()
    }

    fn at(stage: &str) -> Answer {
        Answer::metadata(json!({"current-stage": stage}), json!({}))
    }

    fn stage_of(observed: &Observed) -> String {
        observed
            .meta
            .labels
            .as_ref()
            .and_then(|labels| labels.get("current-stage"))
            .cloned()
            .unwrap_or_default()
    }

    /// The plan of `set waiting-pr-created` on what was read: write from pending, done if there.
    fn set_created(observed: &Observed) -> Step<&'static str> {
        match stage_of(observed).as_str() {
            "pending" => Step::Write {
                patch: step("pending", "waiting-pr-created"),
                then: "applied",
            },
            "waiting-pr-created" => Step::Done("noop"),
            other => Step::Refuse(format!("at {other}")),
        }
    }

    /// The plan `set waiting-pr-created` makes without a read: from pending.
    fn hot_path() -> Option<Step<&'static str>> {
        Some(Step::Write {
            patch: step("pending", "waiting-pr-created"),
            then: "applied",
        })
    }

    fn failed_test() -> Answer {
        Answer::status(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        )
    }

    fn methods(server: &mock::Server) -> Vec<String> {
        server.seen().iter().map(|s| s.method.clone()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_hot_path_is_one_json_patch_that_tests_the_stage_it_replaces() {
        let (cluster, server) =
            mock::cluster(vec![at("waiting-pr-created")], Duration::from_secs(30));
        let swapped = cluster
            .compare_and_swap(OPERATION, hot_path(), set_created)
            .await
            .unwrap();
        assert!(matches!(
            swapped,
            Swapped::Written {
                then: "applied",
                ..
            }
        ));
        let seen = server.seen();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].method, "PATCH");
        assert_eq!(
            seen[0].path,
            "/apis/argoproj.io/v1alpha1/namespaces/ns/workflows/play?"
        );
        assert_eq!(seen[0].content_type, "application/json-patch+json");
        assert_eq!(
            seen[0].body,
            json!([
                {"op": "test", "path": "/metadata/labels/current-stage", "value": "pending"},
                {"op": "replace", "path": "/metadata/labels/current-stage", "value": "waiting-pr-created"},
            ])
        );
    }

    /// A failed `test` means the workflow moved: read it, plan again, and a change already
    /// made is a success that writes nothing.
    #[tokio::test(start_paused = true)]
    async fn a_refused_patch_is_followed_by_a_read_and_a_new_plan() {
        let (cluster, server) = mock::cluster(
            vec![failed_test(), at("waiting-pr-created")],
            Duration::from_secs(30),
        );
        let swapped = cluster
            .compare_and_swap(OPERATION, hot_path(), set_created)
            .await
            .unwrap();
        assert!(matches!(swapped, Swapped::Unchanged("noop")));
        assert_eq!(methods(&server), ["PATCH", "GET"]);

        // Read, planned again from what was read, written with the new plan's test.
        let (cluster, server) = mock::cluster(
            vec![failed_test(), at("pending"), at("waiting-pr-created")],
            Duration::from_secs(30),
        );
        let stale = Some(Step::Write {
            patch: step("queued", "waiting-pr-created"),
            then: "applied",
        });
        cluster
            .compare_and_swap(OPERATION, stale, set_created)
            .await
            .unwrap();
        let seen = server.seen();
        assert_eq!(methods(&server), ["PATCH", "GET", "PATCH"]);
        assert_eq!(seen[2].body[0]["value"], "pending");
    }

    #[tokio::test(start_paused = true)]
    async fn a_workflow_that_keeps_changing_is_given_up_after_ten_refused_patches() {
        let mut script = Vec::new();
        for _ in 0..MAX_REFUSED {
            script.extend([at("pending"), failed_test()]);
        }
        let (cluster, server) = mock::cluster(script, Duration::from_secs(30));
        let err = cluster
            .compare_and_swap(OPERATION, None, set_created)
            .await
            .unwrap_err();
        assert_eq!(err.kind, Kind::GaveUp);
        assert!(err.message().contains("kept changing"), "{err}");
        let patches = methods(&server).iter().filter(|m| *m == "PATCH").count();
        assert_eq!(patches, MAX_REFUSED);
    }

    /// The policy's denial is final, whether its own validation (403) or a binding it cannot
    /// evaluate (422, not a failed `test`): reading again cannot change it.
    #[tokio::test(start_paused = true)]
    async fn a_policy_denial_is_refused_without_a_read() {
        let denials = [
            Answer::status(
                403,
                "Forbidden",
                "workflows.argoproj.io \"play\" is forbidden: ValidatingAdmissionPolicy \
                 'stagectl-stage-machine-play' with binding 'b' denied request: pending → completed \
                 is not a move of the stage machine",
            ),
            Answer::status(
                422,
                "Invalid",
                "The workflows \"play\" is invalid: : ValidatingAdmissionPolicy \
                 'stagectl-stage-machine-play' with binding 'b' denied request: failed to configure \
                 binding: no params found for policy binding with `Deny` parameterNotFoundAction",
            ),
        ];
        for denied in denials {
            let (cluster, server) = mock::cluster(vec![denied], Duration::from_secs(30));
            let illegal = Some(Step::Write {
                patch: step("pending", "completed"),
                then: "applied",
            });
            let err = cluster
                .compare_and_swap(OPERATION, illegal, set_created)
                .await
                .unwrap_err();
            assert_eq!(err.kind, Kind::Refused);
            assert!(
                err.message().contains("stage-machine policy refused"),
                "{err}"
            );
            assert_eq!(methods(&server), ["PATCH"]);
        }
    }

    /// A 5xx and an attempt that never answers are tried again within the budget; the
    /// answer that finally comes is the operation's.
    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_tried_again_within_the_budget() {
        let (cluster, server) = mock::cluster(
            vec![
                Answer::status(503, "ServiceUnavailable", "etcd is unhappy"),
                Answer::Silence,
                at("waiting-pr-created"),
            ],
            Duration::from_secs(30),
        );
        let started = tokio::time::Instant::now();
        let swapped = cluster
            .compare_and_swap(OPERATION, hot_path(), set_created)
            .await
            .unwrap();
        assert!(matches!(swapped, Swapped::Written { .. }));
        assert_eq!(methods(&server), ["PATCH", "PATCH", "PATCH"]);
        assert_eq!(cluster.retries(), 2);
        // The silent attempt was cut at the attempt timeout, not at the budget's end.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_never_answers_is_given_up_when_the_budget_is_spent() {
        let (cluster, _server) = mock::cluster(vec![Answer::Silence; 10], Duration::from_secs(25));
        let started = tokio::time::Instant::now();
        let err = cluster
            .compare_and_swap(OPERATION, None, set_created)
            .await
            .unwrap_err();
        assert_eq!(err.kind, Kind::GaveUp);
        assert!(err.message().contains("raise --timeout"), "{err}");
        assert!(
            started.elapsed() <= Duration::from_secs(25),
            "{:?}",
            started.elapsed()
        );
    }

    /// A plan that waits reads again until it can act, within the wait's own budget, and says
    /// what it waited for when that runs out.
    #[tokio::test(start_paused = true)]
    async fn a_wait_reads_again_until_the_plan_can_act_or_its_budget_runs_out() {
        let waiting = Operation {
            wait: Some(WaitBudget {
                limit: Duration::from_secs(3),
                flag: "--wait-for-node",
            }),
            ..OPERATION
        };
        let plan = |observed: &Observed| match stage_of(observed).as_str() {
            "queued" => Step::Wait("waits for its node".to_string()),
            _ => set_created(observed),
        };
        let (cluster, server) = mock::cluster(
            vec![
                at("queued"),
                at("queued"),
                at("pending"),
                at("waiting-pr-created"),
            ],
            Duration::from_secs(30),
        );
        let swapped = cluster.compare_and_swap(waiting, None, plan).await.unwrap();
        assert!(matches!(swapped, Swapped::Written { .. }));
        assert_eq!(methods(&server), ["GET", "GET", "GET", "PATCH"]);

        let (cluster, _server) = mock::cluster(vec![at("queued"); 10], Duration::from_secs(30));
        let err = cluster
            .compare_and_swap(waiting, None, plan)
            .await
            .unwrap_err();
        assert_eq!(err.kind, Kind::GaveUp);
        assert_eq!(
            err.message(),
            "workflow play waits for its node: gave up after waiting 3s; raise --wait-for-node to wait longer"
        );

        // An operation that does not wait reports a plan that does as a failure of its own.
        let (cluster, _server) = mock::cluster(vec![at("queued")], Duration::from_secs(30));
        let err = cluster
            .compare_and_swap(OPERATION, None, plan)
            .await
            .unwrap_err();
        assert_eq!(err.kind, Kind::Failed);
    }

    /// RBAC's 403 from a server that is up (its /readyz answers) is final on its first answer.
    #[tokio::test(start_paused = true)]
    async fn a_missing_permission_fails_on_its_first_answer() {
        let forbidden = Answer::status(
            403,
            "Forbidden",
            "workflows.argoproj.io \"play\" is forbidden: User \"x\" cannot patch resource \"workflows\"",
        );
        let (cluster, server) =
            mock::cluster(vec![at("pending"), forbidden], Duration::from_secs(30));
        let err = cluster
            .compare_and_swap(OPERATION, None, set_created)
            .await
            .unwrap_err();
        assert_eq!(err.kind, Kind::Forbidden);
        assert_eq!(methods(&server), ["GET", "PATCH"]);
    }

    /// Whatever else the server answers ends the operation with an exit code of its class.
    #[tokio::test(start_paused = true)]
    async fn any_other_answer_ends_in_its_class() {
        let cases = [
            (
                Answer::Json(200, json!("<html>not a workflow</html>")),
                Kind::Failed,
            ),
            (
                Answer::status(418, "Teapot", "short and stout"),
                Kind::Failed,
            ),
            (
                Answer::Json(
                    404,
                    json!({"kind": "Status", "code": 404, "reason": "NotFound",
                           "details": {"name": "play"}, "message": "not found"}),
                ),
                Kind::NotFound,
            ),
            (Answer::status(400, "BadRequest", "no"), Kind::Usage),
        ];
        for (answer, kind) in cases {
            let (cluster, _server) = mock::cluster(vec![answer.clone()], Duration::from_secs(30));
            let err = cluster
                .compare_and_swap(OPERATION, None, set_created)
                .await
                .unwrap_err();
            assert_eq!(err.kind, kind, "{answer:?}: {err}");
        }
    }
}
