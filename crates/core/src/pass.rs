//! A play's passes. A wait whose definition names a `sentBackBy` event sends the play back to an
//! earlier stage for another pass (a review requesting changes runs the implementer again); the
//! pass is part of the play's state, written in the same compare-and-swap as the stage, and each
//! pass's waits are released only by events of that pass: one that happened on GitHub before
//! the pass began is the earlier pass's, however late it is delivered.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The play's pass, counted from 1. The play template creates plays with "1" so that a stage
/// change can test it (a JSON Patch cannot test that a key is absent); a play without it is in
/// its first pass.
pub const PASS_ANNOTATION: &str = "stagectl.dev/pass";

/// When the play's current pass began (RFC 3339), written with every send-back.
pub const PASS_BEGAN_ANNOTATION: &str = "stagectl.dev/pass-began";

/// The back edges a play's pipeline has, `from>to` separated by commas: what the API server's
/// policy (CEL, which has no JSON parser) reads of the definition the play carries.
pub const BACK_EDGES_ANNOTATION: &str = "stagectl.dev/back-edges";

/// How many passes the play's pipeline allows, for the policy likewise.
pub const PASSES_ANNOTATION: &str = "stagectl.dev/passes";

/// A play's pass as read from its annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub number: u32,
    /// None for the first pass, which began with the play.
    pub began: Option<Timestamp>,
    /// Whether the play has the pass annotation, which a change can then test.
    pub annotated: bool,
}

impl Default for Pass {
    fn default() -> Self {
        Self {
            number: 1,
            began: None,
            annotated: false,
        }
    }
}

impl Pass {
    /// The play's pass; an annotation that does not read is refused with the reason (a play's
    /// pass is never guessed).
    pub fn of(meta: &ObjectMeta) -> Result<Self, String> {
        let annotations = meta.annotations.as_ref();
        let get = |key: &str| annotations.and_then(|a| a.get(key));
        let number = match get(PASS_ANNOTATION) {
            None => return Ok(Self::default()),
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    format!(
                        "its {PASS_ANNOTATION} annotation {:?} is no pass number",
                        crate::labels::shorten(text)
                    )
                })?,
        };
        let began = match get(PASS_BEGAN_ANNOTATION) {
            Some(text) if number > 1 => Some(text.parse::<Timestamp>().map_err(|_| {
                format!(
                    "its {PASS_BEGAN_ANNOTATION} annotation {:?} is no time",
                    crate::labels::shorten(text)
                )
            })?),
            Some(_) | None if number > 1 => {
                return Err(format!(
                    "it is in pass {number} but has no {PASS_BEGAN_ANNOTATION} annotation"
                ));
            }
            _ => None,
        };
        Ok(Self {
            number,
            began,
            annotated: true,
        })
    }

    /// Whether an event that happened on GitHub at `occurred` belongs to this pass. GitHub's
    /// times are whole seconds, so the pass begins at the first whole second after the
    /// send-back: an event of the earlier pass in that same second is never taken for this
    /// one's. This pass's own events come after that second began, as its agents only start
    /// once the stage step after the wait that sent the play back has held until it
    /// ([`Self::first_second`]). An event without a time (given by hand) is taken as this pass's.
    pub fn admits(&self, occurred: Option<Timestamp>) -> bool {
        match (self.began, occurred) {
            (Some(began), Some(occurred)) => occurred >= first_whole_second(began),
            _ => true,
        }
    }

    /// The first whole second of this pass (none for the first pass): before it, an event of
    /// this pass could not be told from one of the pass before by its time on GitHub. An agent
    /// that started in the second the play was sent back (a pod starts in well under one) had
    /// its event dated before the pass and taken for the earlier pass's.
    pub fn first_second(&self) -> Option<Timestamp> {
        self.began.map(first_whole_second)
    }

    /// The annotations a send-back writes: the next pass, and when it began.
    pub(crate) fn next_annotations(&self, now: Timestamp) -> Vec<(String, String)> {
        vec![
            (PASS_ANNOTATION.to_string(), (self.number + 1).to_string()),
            (PASS_BEGAN_ANNOTATION.to_string(), now.to_string()),
        ]
    }
}

fn first_whole_second(at: Timestamp) -> Timestamp {
    let second = at.as_second();
    let whole = if at.subsec_nanosecond() > 0 {
        second.saturating_add(1)
    } else {
        second
    };
    Timestamp::from_second(whole).unwrap_or(at)
}

/// The back edges of `pipeline`, each `wait>stage`, as the policy's CEL reads them: from the
/// annotation a play carries, or the list rendered into the policy.
pub(crate) fn back_edges(pipeline: &crate::stage::Pipeline) -> Vec<String> {
    pipeline
        .back_edges()
        .map(|(from, to)| format!("{from}>{to}"))
        .collect()
}

/// The back edges of `pipeline` as the play carries them ([`BACK_EDGES_ANNOTATION`]).
pub(crate) fn back_edges_annotation(pipeline: &crate::stage::Pipeline) -> String {
    back_edges(pipeline).join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::Meta;

    fn meta(annotations: &[(&str, &str)]) -> ObjectMeta {
        let owned: Vec<(String, String)> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Meta::default().annotations(&owned).build()
    }

    #[test]
    fn a_play_without_the_annotation_is_in_its_first_pass() {
        assert_eq!(Pass::of(&meta(&[])), Ok(Pass::default()));
        let first = Pass::of(&meta(&[(PASS_ANNOTATION, "1")])).unwrap();
        assert_eq!(
            (first.number, first.annotated, first.began),
            (1, true, None)
        );
        let second = Pass::of(&meta(&[
            (PASS_ANNOTATION, "2"),
            (PASS_BEGAN_ANNOTATION, "2026-12-07T10:00:00.5Z"),
        ]))
        .unwrap();
        assert_eq!(second.number, 2);
        for bad in [
            vec![(PASS_ANNOTATION, "0")],
            vec![(PASS_ANNOTATION, "two")],
            vec![(PASS_ANNOTATION, "2")],
            vec![(PASS_ANNOTATION, "2"), (PASS_BEGAN_ANNOTATION, "yesterday")],
        ] {
            assert!(Pass::of(&meta(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_pass_admits_what_happened_from_the_first_whole_second_after_it_began() {
        let pass = Pass::of(&meta(&[
            (PASS_ANNOTATION, "2"),
            (PASS_BEGAN_ANNOTATION, "2026-12-07T10:00:00.5Z"),
        ]))
        .unwrap();
        let at = |text: &str| Some(text.parse::<Timestamp>().unwrap());
        assert!(!pass.admits(at("2026-12-07T09:59:59Z")));
        // The same second as the send-back: GitHub cannot say which came first.
        assert!(!pass.admits(at("2026-12-07T10:00:00Z")));
        assert!(pass.admits(at("2026-12-07T10:00:01Z")));
        assert!(pass.admits(None));
        assert!(Pass::default().admits(at("2000-01-01T00:00:00Z")));
        let exact = Pass {
            began: at("2026-12-07T10:00:00Z"),
            ..pass
        };
        assert!(exact.admits(at("2026-12-07T10:00:00Z")));
    }
}

#[cfg(test)]
mod loops;
