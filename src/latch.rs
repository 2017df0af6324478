//! Early events. An event for a wait the workflow has not reached yet is latched on the Workflow,
//! and the `set` that enters that wait's stage honours it in its compare-and-swap.
//!
//! Each waiting stage has one latch annotation, `stagectl.dev/latch-<stage>`. Its empty value
//! means "no early event"; play workflows are created with the empty values (the play template
//! sets them at submission), because a JSON Patch can test a value but not the absence of a key:
//! with the empty value in place, `set` tests it in its one request, and a latch written a moment
//! earlier makes that test fail instead of being overlooked.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::record::history;

pub const LATCH_PREFIX: &str = "stagectl.dev/latch-";
/// Where a resume records which event released a wait (one per stage, newest wins).
pub const RESUMED_PREFIX: &str = "stagectl.dev/resumed-";

pub fn latch_key(stage: &str) -> String {
    format!("{LATCH_PREFIX}{stage}")
}

pub fn resumed_key(stage: &str) -> String {
    format!("{RESUMED_PREFIX}{stage}")
}

/// One webhook delivery: what happened, and GitHub's id for it (kept across redeliveries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub at: Timestamp,
    pub by: String,
}

impl Delivery {
    pub fn describe(&self) -> String {
        format!(
            "{} (delivery {})",
            self.event.as_deref().unwrap_or("event"),
            self.delivery_id.as_deref().unwrap_or("without id")
        )
    }
}

/// The latch annotation of one stage, as found on a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatchSlot {
    /// No annotation: the workflow was not created with the empty latches.
    Missing,
    /// The empty value: no early event.
    Empty,
    /// An early event, with the annotation's exact text (to test it in a patch).
    Latched(Delivery, String),
}

pub fn latch_slot(meta: &ObjectMeta, stage: &str) -> LatchSlot {
    match meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(&latch_key(stage)))
    {
        None => LatchSlot::Missing,
        Some(value) if value.is_empty() => LatchSlot::Empty,
        Some(value) => match serde_json::from_str(value) {
            Ok(delivery) => LatchSlot::Latched(delivery, value.clone()),
            // Unreadable text is still a latch someone wrote; keep it rather than lose an event.
            Err(_) => LatchSlot::Latched(
                Delivery {
                    delivery_id: None,
                    event: None,
                    at: Timestamp::UNIX_EPOCH,
                    by: "unknown".into(),
                },
                value.clone(),
            ),
        },
    }
}

/// Where the workflow already records this delivery (a latch, a resume, a wait satisfied early),
/// if anywhere: GitHub redeliveries keep their id, and must not act twice.
pub fn delivery_seen(meta: &ObjectMeta, delivery_id: &str) -> Option<String> {
    let annotations = meta.annotations.as_ref()?;
    let matches = |value: &str| {
        serde_json::from_str::<Delivery>(value)
            .is_ok_and(|d| d.delivery_id.as_deref() == Some(delivery_id))
    };
    for (key, value) in annotations {
        if let Some(stage) = key.strip_prefix(LATCH_PREFIX)
            && matches(value)
        {
            return Some(format!("it is latched for {stage}"));
        }
        if let Some(stage) = key.strip_prefix(RESUMED_PREFIX)
            && matches(value)
        {
            return Some(format!("it resumed the wait of {stage}"));
        }
    }
    history(meta).values().find_map(|entry| {
        let by = entry.wait_satisfied_by.as_ref()?;
        (by.delivery_id.as_deref() == Some(delivery_id))
            .then(|| format!("it satisfied the wait of {} early", entry.to))
    })
}

/// The delivery that satisfied the wait of `stage` early, when the workflow entered `stage`
/// (its latest entry into it) with a latch in place.
pub fn satisfied_early(meta: &ObjectMeta, stage: &str) -> Option<Delivery> {
    history(meta)
        .into_values()
        .rev()
        .find(|e| e.to == stage)?
        .wait_satisfied_by
}

/// The empty latches of the waiting stages (every stage but the first and the last), as a
/// workflow should be created with them.
pub fn empty_latches(stages: &[String]) -> Vec<(String, String)> {
    stages[1..stages.len() - 1]
        .iter()
        .map(|s| (latch_key(s), String::new()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ChangeKind, HistoryEntry};

    fn delivery(id: &str) -> Delivery {
        Delivery {
            delivery_id: Some(id.into()),
            event: Some("pull_request".into()),
            at: Timestamp::from_second(1_790_000_000).unwrap(),
            by: "sensor".into(),
        }
    }

    fn meta(annotations: &[(String, String)]) -> ObjectMeta {
        ObjectMeta {
            annotations: Some(annotations.iter().cloned().collect()),
            ..Default::default()
        }
    }

    #[test]
    fn latch_slots_tell_missing_empty_and_latched_apart() {
        let latched = serde_json::to_string(&delivery("d-1")).unwrap();
        let m = meta(&[
            (latch_key("waiting-pr-created"), latched.clone()),
            (latch_key("waiting-ready-for-qa"), String::new()),
        ]);
        assert_eq!(
            latch_slot(&m, "waiting-pr-created"),
            LatchSlot::Latched(delivery("d-1"), latched)
        );
        assert_eq!(latch_slot(&m, "waiting-ready-for-qa"), LatchSlot::Empty);
        assert_eq!(latch_slot(&m, "waiting-pr-approved"), LatchSlot::Missing);
    }

    #[test]
    fn deliveries_are_recognised_wherever_the_workflow_recorded_them() {
        let entry = HistoryEntry {
            at: Timestamp::from_second(1_790_000_100).unwrap(),
            from: "pending".into(),
            to: "waiting-pr-created".into(),
            kind: ChangeKind::Set,
            by: "pod".into(),
            reason: None,
            wait_satisfied_by: Some(delivery("early")),
        };
        let m = meta(&[
            (
                latch_key("waiting-ready-for-qa"),
                serde_json::to_string(&delivery("latched")).unwrap(),
            ),
            (
                resumed_key("waiting-pr-approved"),
                serde_json::to_string(&delivery("resumed")).unwrap(),
            ),
            (
                entry.annotation_key(),
                serde_json::to_string(&entry).unwrap(),
            ),
        ]);
        assert!(
            delivery_seen(&m, "latched")
                .unwrap()
                .contains("latched for waiting-ready-for-qa")
        );
        assert!(delivery_seen(&m, "resumed").unwrap().contains("resumed"));
        assert!(delivery_seen(&m, "early").unwrap().contains("early"));
        assert_eq!(delivery_seen(&m, "new"), None);
        assert_eq!(
            satisfied_early(&m, "waiting-pr-created"),
            Some(delivery("early"))
        );
        assert_eq!(satisfied_early(&m, "waiting-ready-for-qa"), None);
    }

    #[test]
    fn the_waiting_stages_get_empty_latches() {
        let stages: Vec<String> = crate::stage::Pipeline::default().stages().to_vec();
        let keys: Vec<String> = empty_latches(&stages).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "stagectl.dev/latch-waiting-pr-created",
                "stagectl.dev/latch-waiting-ready-for-qa",
                "stagectl.dev/latch-waiting-pr-approved"
            ]
        );
    }
}

/// What `resume --stage STAGE` does to the workflow it selected, decided from what it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumePlan {
    /// Nothing to do, and that is success; the text says why.
    Noop(String),
    /// The workflow's state forbids it.
    Refuse(String),
    /// The workflow is still before the stage: keep the event until `set` gets there.
    Latch { from: String, slot: LatchSlot },
    /// The wait is on: resume its node.
    Resume {
        node_id: String,
        message: Option<String>,
        outputs: Option<serde_json::Value>,
    },
    /// At the stage, but the controller has not created the wait's node yet.
    WaitForNode,
}

pub fn plan_resume(
    pipeline: &crate::stage::Pipeline,
    stage: &str,
    meta: &ObjectMeta,
    node: Result<crate::argo::SuspendNode, crate::argo::Unreadable>,
    delivery_id: Option<&str>,
) -> ResumePlan {
    use crate::argo::SuspendNode;
    let current = crate::record::StageRecord::from_meta(meta)
        .stage
        .unwrap_or_default();
    if let Some(seen) = delivery_id.and_then(|id| delivery_seen(meta, id)) {
        return ResumePlan::Noop(format!("this delivery was handled before: {seen}"));
    }
    if current == crate::stage::FAILED {
        return ResumePlan::Refuse(format!(
            "the play has failed; an event for {stage} changes nothing (rollback the play to go on)"
        ));
    }
    if !pipeline.knows(&current) {
        return ResumePlan::Refuse(format!(
            "the workflow is at {current:?}, which is not a stage of {pipeline}"
        ));
    }
    if pipeline.is_before(&current, stage) {
        return match latch_slot(meta, stage) {
            LatchSlot::Latched(delivery, _) => ResumePlan::Noop(format!(
                "an early event for {stage} is already latched: {}",
                delivery.describe()
            )),
            slot => ResumePlan::Latch {
                from: current,
                slot,
            },
        };
    }
    if current != stage {
        return ResumePlan::Noop(format!(
            "the workflow is at {current}, past {stage}: that wait is over"
        ));
    }
    if let Some(delivery) = satisfied_early(meta, stage) {
        return ResumePlan::Noop(format!(
            "the wait of {stage} was satisfied early by {}",
            delivery.describe()
        ));
    }
    match node {
        Err(unreadable) => ResumePlan::Refuse(format!(
            "the workflow's node status is {}; stagectl does not guess at it: resume through the Argo Server (argo resume)",
            unreadable.0
        )),
        Ok(SuspendNode::Active {
            id,
            message,
            outputs,
        }) => ResumePlan::Resume {
            node_id: id,
            message,
            outputs,
        },
        Ok(SuspendNode::Finished { phase, .. }) => {
            ResumePlan::Noop(format!("the wait of {stage} is already over ({phase})"))
        }
        Ok(SuspendNode::Absent) => ResumePlan::WaitForNode,
    }
}

/// An event for a play that has ended (the controller has marked it completed) and no play of
/// the task runs: a wait that is over is a no-op, as for a running play past the stage; any
/// other event can no longer take effect, and is refused. Ok is the no-op, Err the refusal, each
/// with its reason.
pub fn plan_for_ended_play(
    pipeline: &crate::stage::Pipeline,
    stage: &str,
    meta: &ObjectMeta,
    delivery_id: Option<&str>,
) -> Result<String, String> {
    let current = crate::record::StageRecord::from_meta(meta)
        .stage
        .unwrap_or_default();
    if let Some(seen) = delivery_id.and_then(|id| delivery_seen(meta, id)) {
        return Ok(format!("this delivery was handled before: {seen}"));
    }
    let past_the_wait = current != crate::stage::FAILED
        && pipeline.knows(&current)
        && !pipeline.is_before(&current, stage)
        && (current != stage || satisfied_early(meta, stage).is_some());
    if past_the_wait {
        Ok(format!(
            "the play has ended at {current}, past {stage}: that wait is over"
        ))
    } else {
        Err(format!(
            "the play has ended at stage {current:?}; an event for {stage} changes nothing"
        ))
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;
    use crate::argo::{SuspendNode, Unreadable};
    use crate::stage::Pipeline;

    const S: &str = "waiting-ready-for-qa";

    fn at(stage: &str, annotations: &[(String, String)]) -> ObjectMeta {
        ObjectMeta {
            labels: Some([("current-stage".to_string(), stage.to_string())].into()),
            annotations: Some(annotations.iter().cloned().collect()),
            ..Default::default()
        }
    }

    fn active() -> Result<SuspendNode, Unreadable> {
        Ok(SuspendNode::Active {
            id: "n".into(),
            message: None,
            outputs: None,
        })
    }

    #[test]
    fn an_early_event_is_latched_once() {
        let p = Pipeline::default();
        let empty = [(latch_key(S), String::new())];
        assert_eq!(
            plan_resume(
                &p,
                S,
                &at("waiting-pr-created", &empty),
                Ok(SuspendNode::Absent),
                Some("d")
            ),
            ResumePlan::Latch {
                from: "waiting-pr-created".into(),
                slot: LatchSlot::Empty
            }
        );
        let latched =
            serde_json::json!({"deliveryId": "d1", "at": "2026-01-01T00:00:00Z", "by": "x"})
                .to_string();
        let plan = plan_resume(
            &p,
            S,
            &at("pending", &[(latch_key(S), latched)]),
            Ok(SuspendNode::Absent),
            Some("d2"),
        );
        assert!(matches!(plan, ResumePlan::Noop(why) if why.contains("already latched")));
        let plan = plan_resume(&p, S, &at("pending", &[]), Ok(SuspendNode::Absent), None);
        assert_eq!(
            plan,
            ResumePlan::Latch {
                from: "pending".into(),
                slot: LatchSlot::Missing
            }
        );
    }

    #[test]
    fn an_event_on_time_resumes_or_waits_for_the_node() {
        let p = Pipeline::default();
        assert!(matches!(
            plan_resume(&p, S, &at(S, &[]), active(), Some("d")),
            ResumePlan::Resume { .. }
        ));
        assert_eq!(
            plan_resume(&p, S, &at(S, &[]), Ok(SuspendNode::Absent), Some("d")),
            ResumePlan::WaitForNode
        );
        let finished = Ok(SuspendNode::Finished {
            id: "n".into(),
            phase: "Succeeded".into(),
        });
        assert!(matches!(
            plan_resume(&p, S, &at(S, &[]), finished, None),
            ResumePlan::Noop(_)
        ));
    }

    #[test]
    fn late_duplicate_failed_and_unreadable_cases_never_act() {
        let p = Pipeline::default();
        assert!(
            matches!(plan_resume(&p, S, &at("completed", &[]), active(), None), ResumePlan::Noop(w) if w.contains("over"))
        );
        assert!(matches!(
            plan_resume(&p, S, &at("failed", &[]), active(), None),
            ResumePlan::Refuse(_)
        ));
        assert!(
            matches!(plan_resume(&p, S, &at(S, &[]), Err(Unreadable("compressed")), None), ResumePlan::Refuse(w) if w.contains("Argo Server"))
        );
        let resumed =
            serde_json::json!({"deliveryId": "d", "at": "2026-01-01T00:00:00Z", "by": "x"})
                .to_string();
        let meta = at(S, &[(resumed_key(S), resumed)]);
        assert!(
            matches!(plan_resume(&p, S, &meta, active(), Some("d")), ResumePlan::Noop(w) if w.contains("handled before"))
        );
    }

    #[test]
    fn an_event_for_an_ended_play_is_a_noop_only_past_its_wait() {
        let p = Pipeline::default();
        let ended = |stage| plan_for_ended_play(&p, S, &at(stage, &[]), Some("d"));
        assert!(matches!(ended("completed"), Ok(w) if w.contains("over")));
        assert!(ended("waiting-pr-approved").is_ok());
        assert!(matches!(ended("failed"), Err(w) if w.contains("\"failed\"")));
        // Ended before the wait, or in it (stopped, terminated): the event can never apply.
        assert!(ended("pending").is_err());
        assert!(ended(S).is_err());
        assert!(ended("no-such-stage").is_err());
    }
}
