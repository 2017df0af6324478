//! The stage machine: which stage may follow which. A stage is parsed once, against the
//! pipeline, into a [`Stage`] that knows its place; decisions compare places, never names.

use std::fmt;

use crate::error::{Error, Result};
use crate::event::{Awaited, EventFacts, Verdict};
use crate::labels::{is_label_value, shorten};

/// The name of the stage a play enters when it cannot go on; reachable from any unfinished stage.
pub(crate) const FAILED: &str = "failed";

/// Environment variable that replaces the default stage order, as `--stages` does.
pub const STAGES_ENV: &str = "STAGECTL_STAGES";

pub(crate) const STAGE_NAME_MAX: usize = 50;

/// Where a stage stands relative to the pipeline's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Place {
    /// Its index in the order (u32: a stage is carried by every record `get` keeps, and a
    /// smaller one keeps 10,000 records smaller).
    Ordered(u32),
    Failed,
    /// A label value that is no stage of this pipeline (another pipeline's, or hand-written).
    Foreign,
}

/// A stage of a pipeline, or a foreign value found on a workflow. Made only by a [`Pipeline`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stage {
    name: Box<str>,
    place: Place,
}

// A record `get` keeps holds two of these; a `String` label value is no larger (24 bytes), and
// `get` of 10,000 plays is measured against that (docs/PERFORMANCE.md).
const _: () = assert!(std::mem::size_of::<Option<Stage>>() == 24);

impl Stage {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn is_failed(&self) -> bool {
        self.place == Place::Failed
    }

    /// Whether this is a stage of the pipeline it was read with, or `failed`.
    pub fn is_known(&self) -> bool {
        self.place != Place::Foreign
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl serde::Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

/// The ordered stages of a pipeline. The first is where a workflow starts, the last is its
/// successful end; `failed` stands outside the order. Every stage between them is a wait, and
/// a pipeline read from a definition knows the event that releases each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    name: String,
    stages: Vec<String>,
    /// Per stage, the event that releases its wait; none for the first and the last, and none
    /// for a pipeline given as a bare list of stages (`--stages`).
    waits: Vec<Option<Awaited>>,
    /// Per stage, the event that fails the play at its wait, where the definition names one.
    failures: Vec<Option<Awaited>>,
    /// Per stage, the event that sends the play back from its wait to an earlier stage (by
    /// index) for another pass, where the definition names one.
    send_backs: Vec<Option<(Awaited, u32)>>,
    /// How many passes a play may make; a send-back in the last one fails it instead.
    passes: u32,
}

/// A back edge of the stage machine: an event at a wait that sends the play back to an earlier
/// stage, for its next pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendBack<'a> {
    pub event: &'a Awaited,
    pub to: Stage,
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.stages.join(" → "))
    }
}

/// What a change has to do, decided from the stage the workflow is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Already there: nothing to write.
    Noop,
    /// Write `to` if, and only if, the workflow is still at `from`.
    Apply {
        from: Stage,
        to: Stage,
        forced: bool,
    },
    /// Not allowed from here; the text says why and what would be.
    Refuse(String),
}

/// Which moves a `set` may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moves {
    /// Only the legal moves of the table.
    Legal,
    /// Any (`set --force`): an operator's repair, recorded as forced.
    Any,
}

impl Pipeline {
    /// A pipeline from a comma-separated list such as `queued,building,done`.
    pub fn parse(list: &str) -> Result<Self> {
        let stages: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
        let usage =
            |why: String| Error::usage(format!("invalid --stages {:?}: {why}", shorten(list)));
        if stages.len() < 2 {
            return Err(usage(
                "name at least two stages, separated by commas".into(),
            ));
        }
        for (i, stage) in stages.iter().enumerate() {
            if stage.is_empty() || !is_label_value(stage) {
                return Err(usage(format!(
                    "{:?} is not a valid label value",
                    shorten(stage)
                )));
            }
            // Stage names become part of annotation keys (`stagectl.dev/latch-<stage>`).
            if stage.len() > STAGE_NAME_MAX {
                return Err(usage(format!(
                    "{:?} is longer than {STAGE_NAME_MAX} characters",
                    shorten(stage)
                )));
            }
            if stage == FAILED {
                return Err(usage(format!(
                    "{FAILED:?} is implied and cannot be part of the order"
                )));
            }
            if stages[..i].contains(stage) {
                return Err(usage(format!("{stage:?} appears twice")));
            }
        }
        let waits = vec![None; stages.len()];
        Ok(Self {
            name: "stages".into(),
            failures: waits.clone(),
            send_backs: vec![None; stages.len()],
            passes: 1,
            stages,
            waits,
        })
    }

    /// A pipeline from a definition its parser has checked (the pipeline module).
    pub(crate) fn from_parts(
        name: String,
        stages: Vec<String>,
        waits: Vec<Option<Awaited>>,
        failures: Vec<Option<Awaited>>,
        send_backs: Vec<Option<(Awaited, u32)>>,
        passes: u32,
    ) -> Self {
        Self {
            name,
            stages,
            waits,
            failures,
            send_backs,
            passes,
        }
    }

    /// Every stage in order, by name (`failed` stands outside the order).
    pub fn stages(&self) -> impl Iterator<Item = &str> {
        self.stages.iter().map(String::as_str)
    }

    /// The definition's name (`stages` for a bare `--stages` list).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The event that releases a wait at `stage`, when the pipeline's definition names one.
    pub fn awaited(&self, stage: &Stage) -> Option<&Awaited> {
        match stage.place {
            Place::Ordered(i) => self.waits.get(i as usize)?.as_ref(),
            _ => None,
        }
    }

    /// The event that fails the play at its wait at `stage`, when the definition names one.
    pub fn failing(&self, stage: &Stage) -> Option<&Awaited> {
        match stage.place {
            Place::Ordered(i) => self.failures.get(i as usize)?.as_ref(),
            _ => None,
        }
    }

    /// The back edge of the wait at `stage`, when the definition names one.
    pub fn sending_back(&self, stage: &Stage) -> Option<SendBack<'_>> {
        match stage.place {
            Place::Ordered(i) => {
                let (event, to) = self.send_backs.get(i as usize)?.as_ref()?;
                Some(SendBack {
                    event,
                    to: self.at(*to as usize),
                })
            }
            _ => None,
        }
    }

    /// Every back edge, as (from, to).
    pub fn back_edges(&self) -> impl Iterator<Item = (Stage, Stage)> + '_ {
        self.waiting_stages()
            .filter_map(|stage| Some((stage.clone(), self.sending_back(&stage)?.to)))
    }

    /// How many passes a play of this pipeline may make (1 when nothing sends it back).
    pub fn passes(&self) -> u32 {
        self.passes
    }

    /// The events that decide the wait at `stage`, each with what it does: its `releasedBy`,
    /// `failedBy` and `sentBackBy`, in that order.
    pub fn decisions(&self, stage: &Stage) -> impl Iterator<Item = (&Awaited, Verdict)> {
        let back = self
            .sending_back(stage)
            .map(|b| (b.event, Verdict::SendsBack));
        self.awaited(stage)
            .map(|a| (a, Verdict::Releases))
            .into_iter()
            .chain(self.failing(stage).map(|a| (a, Verdict::Fails)))
            .chain(back)
    }

    /// What the event does to the wait at `stage`, if anything: [`Awaited::is_met_by`] decides,
    /// and a definition never names one event twice.
    pub fn verdict(&self, stage: &Stage, facts: &EventFacts) -> Option<Verdict> {
        self.decisions(stage)
            .find(|(awaited, _)| awaited.is_met_by(facts))
            .map(|(_, verdict)| verdict)
    }

    /// The waiting stage whose wait the event decides, and how, if any.
    pub fn decided_by(&self, facts: &EventFacts) -> Option<(Stage, Verdict)> {
        self.waiting_stages().find_map(|stage| {
            let verdict = self.verdict(&stage, facts)?;
            Some((stage, verdict))
        })
    }

    fn at(&self, index: usize) -> Stage {
        Stage {
            name: self.stages[index].as_str().into(),
            place: Place::Ordered(u32::try_from(index).unwrap_or(u32::MAX)),
        }
    }

    /// The stage a label value names; a value that is no stage of this pipeline is kept as a
    /// foreign stage, which no step leads from except `--force`.
    pub fn stage(&self, name: &str) -> Stage {
        match self.stages.iter().position(|s| s == name) {
            Some(index) => self.at(index),
            None if name == FAILED => self.failed(),
            None => Stage {
                name: name.into(),
                place: Place::Foreign,
            },
        }
    }

    /// A stage named on the command line: one of the pipeline's, or `failed`.
    pub fn parse_stage(&self, name: &str) -> Result<Stage> {
        let stage = self.stage(name);
        if stage.is_known() {
            Ok(stage)
        } else {
            Err(Error::usage(format!(
                "unknown stage {:?}: use one of {}, or {FAILED}",
                shorten(name),
                self.stages.join(", ")
            )))
        }
    }

    /// A stage named on the command line for a play: one of this pipeline's, or `failed`, or a
    /// label value this pipeline does not know, which the play's own pipeline (the definition
    /// it carries) may: that is decided once the play is read, and refused there if it does
    /// not. Anything else is refused now.
    pub fn named_stage(&self, name: &str) -> Result<Stage> {
        let stage = self.stage(name);
        if stage.is_known()
            || (is_label_value(name) && !name.is_empty() && name.len() <= STAGE_NAME_MAX)
        {
            Ok(stage)
        } else {
            self.parse_stage(name)
        }
    }

    pub fn failed(&self) -> Stage {
        Stage {
            name: FAILED.into(),
            place: Place::Failed,
        }
    }

    pub fn first(&self) -> Stage {
        self.at(0)
    }

    pub fn last(&self) -> Stage {
        self.at(self.stages.len() - 1)
    }

    /// Stages that a workflow waits in for an event: every stage but the first and the last.
    pub fn waiting_stages(&self) -> impl Iterator<Item = Stage> + '_ {
        (1..self.stages.len() - 1).map(|i| self.at(i))
    }

    pub fn is_waiting(&self, stage: &Stage) -> bool {
        matches!(stage.place, Place::Ordered(i) if i > 0 && (i as usize) + 1 < self.stages.len())
    }

    pub(crate) fn is_finished(&self, stage: &Stage) -> bool {
        stage.is_failed() || *stage == self.last()
    }

    /// The stage a normal step forward into `target` starts from.
    pub(crate) fn predecessor(&self, target: &Stage) -> Option<Stage> {
        match target.place {
            Place::Ordered(i) if i > 0 => Some(self.at(i as usize - 1)),
            _ => None,
        }
    }

    /// Whether `a` comes before `b` in the order (false when either is outside it).
    pub(crate) fn is_before(&self, a: &Stage, b: &Stage) -> bool {
        matches!((a.place, b.place), (Place::Ordered(x), Place::Ordered(y)) if x < y)
    }

    /// The stages a workflow at `current` may move to without `--force`: one step forward,
    /// `failed` from an unfinished stage, one step back, and from `failed` back to the stage it
    /// failed at (`failed_at`). Nothing leads out of the last stage or a foreign one. The API
    /// server's policy (workflow-templates/stage-machine-policy.yaml) enforces the same table;
    /// tests/vectors/stage-moves.json holds it as data for both.
    pub(crate) fn legal_targets(&self, current: &Stage, failed_at: Option<&Stage>) -> Vec<Stage> {
        match current.place {
            Place::Ordered(i) if (i as usize) + 1 < self.stages.len() => {
                let i = i as usize;
                let mut targets = vec![self.at(i + 1), self.failed()];
                if i > 0 {
                    targets.push(self.at(i - 1));
                }
                targets
            }
            Place::Failed => failed_at
                .filter(
                    |stage| matches!(stage.place, Place::Ordered(i) if (i as usize) + 1 < self.stages.len()),
                )
                .into_iter()
                .cloned()
                .collect(),
            Place::Ordered(_) | Place::Foreign => Vec::new(),
        }
    }

    /// Decides `set target` for a workflow at `current`: a legal move of the table; with
    /// `force`, any move.
    pub(crate) fn plan_set(&self, current: &Stage, target: &Stage, moves: Moves) -> Transition {
        if current == target {
            return Transition::Noop;
        }
        let apply = |forced| Transition::Apply {
            from: current.clone(),
            to: target.clone(),
            forced,
        };
        if moves == Moves::Any {
            return apply(true);
        }
        if !current.is_known() {
            return Transition::Refuse(format!(
                "the workflow is at {current:?}, which is not a stage of {self}; use --force to move it anyway",
                current = current.name()
            ));
        }
        if target.is_failed() {
            return if self.is_finished(current) {
                Transition::Refuse(format!(
                    "the workflow is already finished at {:?}; only an unfinished stage can move to {FAILED:?}",
                    current.name()
                ))
            } else {
                apply(false)
            };
        }
        match self.predecessor(target) {
            Some(from) if from == *current => apply(false),
            Some(from) => Transition::Refuse(format!(
                "the workflow is at {:?}; `set {target}` needs it at {:?} \
                 (use --force to move anyway, or `rollback` to go back)",
                current.name(),
                from.name()
            )),
            None => Transition::Refuse(format!(
                "{:?} is the first stage and no step leads into it; use `rollback`",
                target.name()
            )),
        }
    }

    /// Decides `rollback` from `current`: one stage back, or from `failed` back to the stage it
    /// failed at (`failed_at`). `to`, when given, must name that stage.
    pub(crate) fn plan_rollback(
        &self,
        current: &Stage,
        failed_at: Option<&Stage>,
        to: Option<&Stage>,
    ) -> Transition {
        if to.is_some_and(Stage::is_failed) {
            return Transition::Refuse(format!(
                "rollback cannot go to {FAILED:?}; use `set {FAILED}`"
            ));
        }
        if to == Some(current) {
            return Transition::Noop;
        }
        let back = if current.is_failed() {
            failed_at.cloned()
        } else {
            self.predecessor(current)
        }
        .filter(|stage| self.legal_targets(current, failed_at).contains(stage));
        let Some(back) = back else {
            let why = if current.is_failed() {
                "and no record of the stage it failed at"
            } else if *current == self.last() {
                "which is final"
            } else if current.is_known() {
                "which is the first stage"
            } else {
                "which is not a stage of this pipeline"
            };
            return Transition::Refuse(format!(
                "the workflow is at {:?}, {why}: there is no earlier stage to return to \
                 (an operator of the break-glass group can move it with `set --force`)",
                current.name()
            ));
        };
        match to {
            Some(to) if *to != back => Transition::Refuse(format!(
                "rollback goes back one stage at a time: from {:?} only to {:?} \
                 (run it again to go further back; use `set` to go forward)",
                current.name(),
                back.name()
            )),
            _ => Transition::Apply {
                from: current.clone(),
                to: back,
                forced: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Pipeline {
        Pipeline::default()
    }

    fn s(name: &str) -> Stage {
        p().stage(name)
    }

    fn apply(from: &str, to: &str) -> Transition {
        Transition::Apply {
            from: s(from),
            to: s(to),
            forced: false,
        }
    }

    #[test]
    fn set_moves_exactly_one_step_forward() {
        let p = p();
        assert_eq!(
            p.plan_set(&s("pending"), &s("waiting-pr-created"), Moves::Legal),
            apply("pending", "waiting-pr-created")
        );
        assert_eq!(
            p.plan_set(&s("waiting-pr-approved"), &s("completed"), Moves::Legal),
            apply("waiting-pr-approved", "completed")
        );
        assert!(
            matches!(p.plan_set(&s("pending"), &s("waiting-ready-for-qa"), Moves::Legal), Transition::Refuse(m) if m.contains("needs it at \"waiting-pr-created\""))
        );
        assert!(matches!(
            p.plan_set(&s("completed"), &s("waiting-pr-approved"), Moves::Legal),
            Transition::Refuse(_)
        ));
        assert!(
            matches!(p.plan_set(&s("waiting-pr-created"), &s("pending"), Moves::Legal), Transition::Refuse(m) if m.contains("rollback"))
        );
    }

    #[test]
    fn repeating_a_step_is_a_noop() {
        let p = p();
        for stage in p.stages.iter().map(String::as_str).chain([FAILED]) {
            assert_eq!(
                p.plan_set(&s(stage), &s(stage), Moves::Legal),
                Transition::Noop
            );
        }
    }

    #[test]
    fn failed_is_reachable_from_every_unfinished_stage_only() {
        let p = p();
        for stage in [
            "pending",
            "waiting-pr-created",
            "waiting-ready-for-qa",
            "waiting-pr-approved",
        ] {
            assert_eq!(
                p.plan_set(&s(stage), &p.failed(), Moves::Legal),
                apply(stage, FAILED)
            );
        }
        assert!(matches!(
            p.plan_set(&s("completed"), &p.failed(), Moves::Legal),
            Transition::Refuse(_)
        ));
    }

    #[test]
    fn a_foreign_stage_moves_only_by_force() {
        let p = p();
        let foreign = s("deploying");
        assert!(!foreign.is_known());
        assert!(p.parse_stage("deploying").is_err());
        assert!(
            matches!(p.plan_set(&foreign, &p.failed(), Moves::Legal), Transition::Refuse(m) if m.contains("--force"))
        );
        assert!(matches!(
            p.plan_set(&foreign, &s("pending"), Moves::Any),
            Transition::Apply { forced: true, .. }
        ));
    }

    #[test]
    fn force_allows_any_move_and_says_so() {
        let p = p();
        assert_eq!(
            p.plan_set(&s("completed"), &s("pending"), Moves::Any),
            Transition::Apply {
                from: s("completed"),
                to: s("pending"),
                forced: true
            }
        );
        assert_eq!(
            p.plan_set(&s("pending"), &s("pending"), Moves::Any),
            Transition::Noop
        );
    }

    #[test]
    fn rollback_returns_to_where_the_workflow_came_from() {
        let p = p();
        assert_eq!(
            p.plan_rollback(&s("waiting-ready-for-qa"), None, None),
            apply("waiting-ready-for-qa", "waiting-pr-created")
        );
        assert_eq!(
            p.plan_rollback(&p.failed(), Some(&s("waiting-pr-created")), None),
            apply(FAILED, "waiting-pr-created")
        );
        assert!(
            matches!(p.plan_rollback(&s("completed"), None, Some(&s("waiting-pr-approved"))), Transition::Refuse(m) if m.contains("final"))
        );
        assert!(
            matches!(p.plan_rollback(&s("waiting-pr-approved"), None, Some(&s("pending"))), Transition::Refuse(m) if m.contains("one stage at a time"))
        );
        assert!(
            matches!(p.plan_rollback(&p.failed(), None, None), Transition::Refuse(m) if m.contains("no record"))
        );
        assert!(matches!(
            p.plan_rollback(&s("pending"), None, None),
            Transition::Refuse(_)
        ));
        assert!(matches!(
            p.plan_rollback(&s("waiting-pr-created"), None, Some(&s("completed"))),
            Transition::Refuse(_)
        ));
        assert!(matches!(
            p.plan_rollback(
                &p.failed(),
                Some(&s("waiting-pr-created")),
                Some(&s("completed"))
            ),
            Transition::Refuse(_)
        ));
        assert!(matches!(
            p.plan_rollback(&s("completed"), None, Some(&p.failed())),
            Transition::Refuse(_)
        ));
    }

    #[test]
    fn custom_orders_are_validated() {
        let p = Pipeline::parse("queued, building ,done").unwrap();
        assert_eq!(p.first().name(), "queued");
        assert_eq!(
            p.plan_set(&p.stage("queued"), &p.stage("building"), Moves::Legal),
            Transition::Apply {
                from: p.stage("queued"),
                to: p.stage("building"),
                forced: false
            }
        );
        let long = format!("a,{}", "b".repeat(51));
        for bad in ["", "one", "a,,b", "a,a", "a,failed", "a,b c", "a,-b", &long] {
            assert!(Pipeline::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// The table both core and the API server's policy are held to.
    #[test]
    fn the_legal_moves_are_those_of_the_shared_vectors() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/vectors/stage-moves.json")).unwrap();
        let names = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let mut checked = 0;
        for pipeline in vectors["pipelines"].as_array().unwrap() {
            let p = Pipeline::parse(&names(&pipeline["stages"]).join(",")).unwrap();
            let stage = |name: &str| (!name.is_empty()).then(|| p.stage(name));
            for row in pipeline["moves"].as_array().unwrap() {
                let from = stage(row["from"].as_str().unwrap());
                let failed_at = stage(row["failedAt"].as_str().unwrap());
                let legal = names(&row["legal"]);
                for target in names(&pipeline["targets"]) {
                    let to = stage(&target);
                    let expected = legal.contains(&target);
                    // A workflow without a stage may only be given the first one (its start
                    // step's `set`), and nothing takes a stage away.
                    if from.is_none() || to.is_none() {
                        let creation = match (&from, &to) {
                            (None, None) => true,
                            (None, Some(to)) => *to == p.first(),
                            _ => false,
                        };
                        assert_eq!(creation, expected, "{from:?} -> {target:?}");
                    }
                    // set and rollback, without --force, make exactly the legal moves.
                    if let (Some(from), Some(to)) = (&from, &to) {
                        let planned = [
                            p.plan_set(from, to, Moves::Legal),
                            p.plan_rollback(from, failed_at.as_ref(), Some(to)),
                        ];
                        let allowed = planned.iter().any(|t| {
                            matches!(
                                t,
                                Transition::Noop | Transition::Apply { forced: false, .. }
                            )
                        });
                        assert_eq!(allowed, expected, "set/rollback {from:?} -> {to:?}");
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked >= 100, "{checked} moves");
    }
}
