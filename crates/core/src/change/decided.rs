use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::clear_latches_left_behind;
use crate::event::Verdict;
use crate::latch::Delivery;
use crate::pass::Pass;
use crate::patch::StageChange;
use crate::record::{ChangeKind, HistoryEntry, clean_reason};
use crate::stage::{Pipeline, Stage};

/// An event that decides a wait otherwise than releasing it: it fails the play there, or sends
/// it back to an earlier stage for its next pass — or, in the last pass the definition allows,
/// fails it there too. The one place that decides where such a play goes: `stagectl resume`
/// uses it for an event at the wait, `set` for a latched one entering it.
pub(crate) struct Decided<'a> {
    pub wait: &'a Stage,
    /// The delivery, its verdict decided.
    pub delivery: &'a Delivery,
    pub by: &'a str,
    pub at: Timestamp,
    /// The pass the play is in.
    pub pass: Pass,
}

impl Decided<'_> {
    /// Where the play goes, and why (the history entry's reason, before `when`).
    fn destination(&self, pipeline: &Pipeline) -> (Stage, ChangeKind, u32, String) {
        let what = self.delivery.describe();
        let wait = self.wait;
        let n = self.pass.number;
        let back = (self.delivery.verdict == Verdict::SendsBack)
            .then(|| pipeline.sending_back(wait))
            .flatten();
        match back {
            Some(back) if n < pipeline.passes() => (
                back.to.clone(),
                ChangeKind::SentBack,
                n + 1,
                format!(
                    "{what} sent the play back from {wait} to {} for pass {} of at most {}",
                    back.to,
                    n + 1,
                    pipeline.passes()
                ),
            ),
            Some(_) => (
                pipeline.failed(),
                ChangeKind::Set,
                n,
                format!(
                    "{what} would send the play back from {wait}, but pass {n} is the last of the \
                     {} the pipeline allows (pass limit reached)",
                    pipeline.passes()
                ),
            ),
            None => (
                pipeline.failed(),
                ChangeKind::Set,
                n,
                format!("{what} failed the wait of {wait}"),
            ),
        }
    }

    /// The compare-and-swap that moves the play from `from` (the wait, or the stage before it
    /// when the event was latched) where the event sends it: the history entry names the
    /// delivery; a send-back writes the next pass and clears the latches of the stages it
    /// leaves behind. `when` ends the reason (" before the play reached it").
    pub(crate) fn change(
        &self,
        pipeline: &Pipeline,
        from: &Stage,
        when: &str,
        observed: &ObjectMeta,
    ) -> (StageChange, HistoryEntry) {
        let (to, kind, pass, reason) = self.destination(pipeline);
        let entry = HistoryEntry {
            at: self.at,
            from: from.name().to_string(),
            to: to.name().to_string(),
            kind,
            by: self.by.to_string(),
            reason: Some(clean_reason(&format!("{reason}{when}"))),
            wait_satisfied_by: Some(self.delivery.clone()),
            pass,
        };
        let mut change = StageChange::new(from.name(), to.name(), &entry);
        change.test_pass(self.pass);
        if kind == ChangeKind::SentBack {
            change
                .set_annotations
                .extend(self.pass.next_annotations(self.at));
            clear_latches_left_behind(&mut change, pipeline, self.wait, &to, observed);
        }
        (change, entry)
    }
}
