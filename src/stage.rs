//! The stage machine: which stage may follow which. Pure decisions over stage names.

use std::fmt;

use crate::error::{Error, Result};
use crate::labels::{is_label_value, shorten};

/// The stage a play enters when it cannot go on; reachable from any unfinished stage.
pub const FAILED: &str = "failed";

/// Environment variable that replaces the default stage order, as `--stages` does.
pub const STAGES_ENV: &str = "STAGECTL_STAGES";

pub const STAGE_NAME_MAX: usize = 50;

const DEFAULT_STAGES: [&str; 5] = [
    "pending",
    "waiting-pr-created",
    "waiting-ready-for-qa",
    "waiting-pr-approved",
    "completed",
];

/// The ordered stages of a pipeline. The first is where a workflow starts, the last is its
/// successful end; `failed` stands outside the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    stages: Vec<String>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self {
            stages: DEFAULT_STAGES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.stages.join(" → "))
    }
}

/// What a `set` has to do, decided from the stage the workflow is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Already there: nothing to write.
    Noop,
    /// Write `to` if, and only if, the workflow is still at `from`.
    Apply {
        from: String,
        to: String,
        forced: bool,
    },
    /// Not allowed from here; the text says why and what would be.
    Refuse(String),
}

impl Pipeline {
    /// A pipeline from a comma-separated list such as `queued,building,done`.
    pub fn parse(list: &str) -> Result<Self> {
        let stages: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
        let usage =
            |why: String| Error::Usage(format!("invalid --stages {:?}: {why}", shorten(list)));
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
        Ok(Self { stages })
    }

    pub fn stages(&self) -> &[String] {
        &self.stages
    }

    pub fn first(&self) -> &str {
        &self.stages[0]
    }

    pub fn last(&self) -> &str {
        self.stages
            .last()
            .expect("a pipeline has at least two stages")
    }

    fn position(&self, stage: &str) -> Option<usize> {
        self.stages.iter().position(|s| s == stage)
    }

    /// Whether `stage` names a stage of this pipeline or `failed`.
    pub fn knows(&self, stage: &str) -> bool {
        stage == FAILED || self.position(stage).is_some()
    }

    /// Checks a stage named on the command line.
    pub fn validate<'a>(&self, stage: &'a str) -> Result<&'a str> {
        if self.knows(stage) {
            Ok(stage)
        } else {
            Err(Error::Usage(format!(
                "unknown stage {:?}: use one of {}, or {FAILED}",
                shorten(stage),
                self.stages.join(", ")
            )))
        }
    }

    /// Stages that a workflow waits in for an event: every stage but the first and the last.
    pub fn is_waiting(&self, stage: &str) -> bool {
        matches!(self.position(stage), Some(i) if i > 0 && i + 1 < self.stages.len())
    }

    pub fn is_finished(&self, stage: &str) -> bool {
        stage == FAILED || stage == self.last()
    }

    /// The stage `set target` moves from when it is a normal step forward.
    pub fn predecessor(&self, target: &str) -> Option<&str> {
        match self.position(target)? {
            0 => None,
            i => Some(&self.stages[i - 1]),
        }
    }

    /// Whether `a` comes before `b` in the order (neither may be `failed`).
    pub fn is_before(&self, a: &str, b: &str) -> bool {
        matches!((self.position(a), self.position(b)), (Some(x), Some(y)) if x < y)
    }

    /// Decides `set target` for a workflow at `current`: exactly one step forward, or into
    /// `failed` from any unfinished stage; with `force`, any move.
    pub fn plan_set(&self, current: &str, target: &str, force: bool) -> Transition {
        if current == target {
            return Transition::Noop;
        }
        let apply = |forced| Transition::Apply {
            from: current.to_string(),
            to: target.to_string(),
            forced,
        };
        if force {
            return apply(true);
        }
        if target == FAILED {
            return if self.is_finished(current) {
                Transition::Refuse(format!(
                    "the workflow is already finished at {current:?}; only an unfinished stage can move to {FAILED:?}"
                ))
            } else {
                apply(false)
            };
        }
        match self.predecessor(target) {
            Some(from) if from == current => apply(false),
            Some(from) => Transition::Refuse(format!(
                "the workflow is at {current:?}; `set {target}` needs it at {from:?} \
                 (use --force to move anyway, or `rollback` to go back)"
            )),
            None => Transition::Refuse(format!(
                "{target:?} is the first stage and no step leads into it; use `rollback --to {target}`"
            )),
        }
    }

    /// Decides `rollback` from `current`. `returned_from` is the stage the workflow came from
    /// when it entered `current` (from its history); without `to`, that is where it goes back.
    pub fn plan_rollback(
        &self,
        current: &str,
        returned_from: Option<&str>,
        to: Option<&str>,
    ) -> Transition {
        let target = match to {
            Some(to) => to,
            None => match returned_from.or_else(|| self.predecessor(current)) {
                Some(previous) => previous,
                None => {
                    return Transition::Refuse(format!(
                        "the workflow is at {current:?} and has no earlier stage to return to"
                    ));
                }
            },
        };
        if target == FAILED {
            return Transition::Refuse(format!(
                "rollback cannot go to {FAILED:?}; use `set {FAILED}`"
            ));
        }
        if current == target {
            return Transition::Noop;
        }
        // From `failed` any stage up to the one it failed at is earlier.
        let reference = if current == FAILED {
            returned_from
        } else {
            Some(current)
        };
        let earlier = match reference {
            Some(reference) => reference == target || self.is_before(target, reference),
            None => self.position(target).is_some(),
        };
        if earlier {
            Transition::Apply {
                from: current.to_string(),
                to: target.to_string(),
                forced: false,
            }
        } else {
            Transition::Refuse(format!(
                "{target:?} is not earlier than {current:?}; rollback only goes back (use `set` to go forward)"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(from: &str, to: &str) -> Transition {
        Transition::Apply {
            from: from.into(),
            to: to.into(),
            forced: false,
        }
    }

    #[test]
    fn set_moves_exactly_one_step_forward() {
        let p = Pipeline::default();
        assert_eq!(
            p.plan_set("pending", "waiting-pr-created", false),
            apply("pending", "waiting-pr-created")
        );
        assert_eq!(
            p.plan_set("waiting-pr-approved", "completed", false),
            apply("waiting-pr-approved", "completed")
        );
        assert!(
            matches!(p.plan_set("pending", "waiting-ready-for-qa", false), Transition::Refuse(m) if m.contains("needs it at \"waiting-pr-created\""))
        );
        assert!(matches!(
            p.plan_set("completed", "waiting-pr-approved", false),
            Transition::Refuse(_)
        ));
        assert!(
            matches!(p.plan_set("waiting-pr-created", "pending", false), Transition::Refuse(m) if m.contains("rollback"))
        );
    }

    #[test]
    fn repeating_a_step_is_a_noop() {
        let p = Pipeline::default();
        for stage in p.stages().iter().map(String::as_str).chain([FAILED]) {
            assert_eq!(p.plan_set(stage, stage, false), Transition::Noop);
        }
    }

    #[test]
    fn failed_is_reachable_from_every_unfinished_stage_only() {
        let p = Pipeline::default();
        for stage in [
            "pending",
            "waiting-pr-created",
            "waiting-ready-for-qa",
            "waiting-pr-approved",
        ] {
            assert_eq!(p.plan_set(stage, FAILED, false), apply(stage, FAILED));
        }
        assert!(matches!(
            p.plan_set("completed", FAILED, false),
            Transition::Refuse(_)
        ));
    }

    #[test]
    fn force_allows_any_move_and_says_so() {
        let p = Pipeline::default();
        assert_eq!(
            p.plan_set("completed", "pending", true),
            Transition::Apply {
                from: "completed".into(),
                to: "pending".into(),
                forced: true
            }
        );
        assert_eq!(p.plan_set("pending", "pending", true), Transition::Noop);
    }

    #[test]
    fn rollback_returns_to_where_the_workflow_came_from() {
        let p = Pipeline::default();
        assert_eq!(
            p.plan_rollback("waiting-ready-for-qa", None, None),
            apply("waiting-ready-for-qa", "waiting-pr-created")
        );
        assert_eq!(
            p.plan_rollback(FAILED, Some("waiting-pr-created"), None),
            apply(FAILED, "waiting-pr-created")
        );
        assert_eq!(
            p.plan_rollback("completed", None, Some("pending")),
            apply("completed", "pending")
        );
        assert!(matches!(
            p.plan_rollback("pending", None, None),
            Transition::Refuse(_)
        ));
        assert!(matches!(
            p.plan_rollback("waiting-pr-created", None, Some("completed")),
            Transition::Refuse(_)
        ));
        assert!(matches!(
            p.plan_rollback(FAILED, Some("waiting-pr-created"), Some("completed")),
            Transition::Refuse(_)
        ));
        assert!(matches!(
            p.plan_rollback("completed", None, Some(FAILED)),
            Transition::Refuse(_)
        ));
    }

    #[test]
    fn custom_orders_are_validated() {
        let p = Pipeline::parse("queued, building ,done").unwrap();
        assert_eq!(p.first(), "queued");
        assert_eq!(
            p.plan_set("queued", "building", false),
            apply("queued", "building")
        );
        let long = format!("a,{}", "b".repeat(51));
        for bad in ["", "one", "a,,b", "a,a", "a,failed", "a,b c", "a,-b", &long] {
            assert!(Pipeline::parse(bad).is_err(), "{bad:?}");
        }
    }
}
