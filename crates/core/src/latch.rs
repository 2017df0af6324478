//! Early events. An event for a wait the workflow has not reached yet is latched on the Workflow,
//! and the `set` that enters that wait's stage honours it in its compare-and-swap.
//!
//! Each waiting stage has one latch annotation, `stagectl.dev/latch-<stage>`. Its empty value
//! means "no early event"; play workflows are created with the empty values (the play template
//! sets them at submission), because a JSON Patch can test a value but not the absence of a key:
//! with the empty value in place, `set` tests it in its one request, and a latch written a moment
//! earlier makes that test fail instead of being overlooked.

pub use crate::delivery::Delivery;
use crate::event::Verdict;
use crate::record::history;
use crate::stage::{Pipeline, Stage};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub(crate) const LATCH_PREFIX: &str = "stagectl.dev/latch-";
/// Where a resume records which event released a wait (one per stage, newest wins).
pub(crate) const RESUMED_PREFIX: &str = "stagectl.dev/resumed-";

pub(crate) fn latch_key(stage: &str) -> String {
    format!("{LATCH_PREFIX}{stage}")
}

pub(crate) fn resumed_key(stage: &str) -> String {
    format!("{RESUMED_PREFIX}{stage}")
}

/// The latch annotation of one stage, as found on a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LatchSlot {
    /// No annotation: the workflow was not created with the empty latches.
    Missing,
    /// The empty value: no early event.
    Empty,
    /// An early event, with the annotation's exact text (to test it in a patch).
    Latched(Delivery, String),
}

pub(crate) fn latch_slot(meta: &ObjectMeta, stage: &Stage) -> LatchSlot {
    match meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(&latch_key(stage.name())))
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
                    verdict: Default::default(),
                },
                value.clone(),
            ),
        },
    }
}

/// Where a workflow already records a delivery, and how it acted there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The delivery as recorded (its time and author tell one write from another).
    pub delivery: Delivery,
    /// `latched`, `resumed` or `satisfied-early`.
    pub how: SeenAs,
    pub stage: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeenAs {
    Latched,
    Resumed,
    SatisfiedEarly,
}

impl Seen {
    pub fn describe(&self) -> String {
        match self.how {
            SeenAs::Latched => format!("it is latched for {}", self.stage),
            SeenAs::Resumed => format!("it resumed the wait of {}", self.stage),
            SeenAs::SatisfiedEarly if self.delivery.verdict == Verdict::Fails => {
                format!("it failed the play before its wait ({})", self.stage)
            }
            SeenAs::SatisfiedEarly if self.delivery.verdict == Verdict::SendsBack => {
                format!("it sent the play back before its wait ({})", self.stage)
            }
            SeenAs::SatisfiedEarly => format!("it satisfied the wait of {} early", self.stage),
        }
    }
}

/// Where the workflow already records this delivery (a latch, a resume, a wait satisfied early),
/// if anywhere: GitHub redeliveries keep their id, and must not act twice.
pub(crate) fn delivery_seen(meta: &ObjectMeta, delivery_id: &str) -> Option<Seen> {
    let annotations = meta.annotations.as_ref()?;
    let parse = |value: &str| {
        serde_json::from_str::<Delivery>(value)
            .ok()
            .filter(|d| d.delivery_id.as_deref() == Some(delivery_id))
    };
    for (key, value) in annotations {
        for (prefix, how) in [
            (LATCH_PREFIX, SeenAs::Latched),
            (RESUMED_PREFIX, SeenAs::Resumed),
        ] {
            if let Some(stage) = key.strip_prefix(prefix)
                && let Some(delivery) = parse(value)
            {
                return Some(Seen {
                    delivery,
                    how,
                    stage: stage.to_string(),
                });
            }
        }
    }
    history(meta).into_values().find_map(|entry| {
        let delivery = entry.wait_satisfied_by?;
        (delivery.delivery_id.as_deref() == Some(delivery_id)).then_some(Seen {
            delivery,
            how: SeenAs::SatisfiedEarly,
            stage: entry.to,
        })
    })
}

/// The delivery that satisfied the wait of `stage` early, when the workflow entered `stage`
/// (its latest entry into it) with a latch in place.
pub(crate) fn satisfied_early(meta: &ObjectMeta, stage: &Stage) -> Option<Delivery> {
    history(meta)
        .into_values()
        .rev()
        .find(|e| e.to == stage.name())?
        .wait_satisfied_by
}

/// The empty latches of the waiting stages, as a workflow should be created with them.
pub fn empty_latches(pipeline: &Pipeline) -> Vec<(String, String)> {
    pipeline
        .waiting_stages()
        .map(|s| (latch_key(s.name()), String::new()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, Meta};
    use crate::record::{ChangeKind, HistoryEntry};

    fn delivery(id: &str) -> Delivery {
        fixtures::delivery(id, "sensor")
    }

    fn meta(annotations: &[(String, String)]) -> ObjectMeta {
        Meta::default().annotations(annotations).build()
    }

    #[test]
    fn latch_slots_tell_missing_empty_and_latched_apart() {
        let latched = serde_json::to_string(&delivery("d-1")).unwrap();
        let m = meta(&[
            (latch_key("waiting-pr-created"), latched.clone()),
            (latch_key("waiting-ready-for-qa"), String::new()),
        ]);
        let p = Pipeline::default();
        assert_eq!(
            latch_slot(&m, &p.stage("waiting-pr-created")),
            LatchSlot::Latched(delivery("d-1"), latched)
        );
        assert_eq!(
            latch_slot(&m, &p.stage("waiting-ready-for-qa")),
            LatchSlot::Empty
        );
        assert_eq!(
            latch_slot(&m, &p.stage("waiting-pr-approved")),
            LatchSlot::Missing
        );
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
            pass: 1,
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
        let seen = |id| delivery_seen(&m, id).unwrap().describe();
        assert!(seen("latched").contains("latched for waiting-ready-for-qa"));
        assert!(seen("resumed").contains("resumed"));
        assert!(seen("early").contains("early"));
        assert_eq!(
            delivery_seen(&m, "early").unwrap().delivery,
            delivery("early")
        );
        assert_eq!(delivery_seen(&m, "new"), None);
        let p = Pipeline::default();
        assert_eq!(
            satisfied_early(&m, &p.stage("waiting-pr-created")),
            Some(delivery("early"))
        );
        assert_eq!(satisfied_early(&m, &p.stage("waiting-ready-for-qa")), None);
    }

    #[test]
    fn the_waiting_stages_get_empty_latches() {
        let keys: Vec<String> = empty_latches(&Pipeline::default())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
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
