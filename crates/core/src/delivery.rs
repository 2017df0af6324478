//! One webhook delivery, as stagectl records it wherever it acted.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::event::Verdict;

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
    /// What the event does to its wait; recorded only when it does not release it.
    #[serde(default, skip_serializing_if = "Verdict::is_releases")]
    pub verdict: Verdict,
}

impl Delivery {
    pub fn describe(&self) -> String {
        format!(
            "{} (delivery {}){}",
            self.event.as_deref().unwrap_or("event"),
            self.delivery_id.as_deref().unwrap_or("without id"),
            match self.verdict {
                Verdict::Releases => "",
                Verdict::Fails => ", which fails its wait",
                Verdict::SendsBack => ", which sends the play back",
            }
        )
    }

    /// The annotation text that records this delivery.
    pub(crate) fn to_annotation(&self) -> String {
        // Unreachable: serde_json fails only on a map with keys that are not strings, or on a
        // Serialize impl that fails; a Delivery is strings and a timestamp.
        serde_json::to_string(self).expect("a delivery serializes")
    }
}
