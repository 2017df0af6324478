//! A pipeline definition: the document a team writes once (workflow-templates/pipeline.yaml is
//! the shipped play). It names the stages in order and, for each stage a play waits in, the
//! GitHub event that releases it; the stage machine, the Sensors and reconcile's matching all
//! come from it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::Awaited;
use crate::labels::{is_label_value, shorten};
use crate::stage::{FAILED, Pipeline, STAGE_NAME_MAX};

/// The definition a play was started with, as JSON, written by its first step: every decision
/// about the play reads it from there, so a definition changed later never moves a play of the
/// earlier one.
pub const ANNOTATION: &str = "stagectl.dev/pipeline";

/// The same play's stage order, comma-separated: what the API server's policy (CEL, which has
/// no JSON parser) reads of it.
pub const STAGES_ANNOTATION: &str = "stagectl.dev/stages";

/// Environment variable that names a pipeline definition (a file, or inline JSON), as
/// `--pipeline` does.
pub const PIPELINE_ENV: &str = "STAGECTL_PIPELINE";

pub const API_VERSION: &str = "stagectl.dev/v1alpha1";
pub const KIND: &str = "Pipeline";

/// The shipped play, compiled in: what every command uses unless told otherwise.
pub const DEFAULT_DEFINITION: &str = include_str!("../../../workflow-templates/pipeline.yaml");

/// Longest pipeline name: it becomes part of the names of the objects rendered for it
/// (`stagectl-stage-machine-<name>`, `<name>-<stage>` Sensors), which stay within 63.
pub const NAME_MAX: usize = 30;

/// Largest definition read: a pipeline is a page of YAML, and the YAML parser's own limits are
/// not the place to find out that a file was the wrong one.
pub const SIZE_MAX: usize = 256 * 1024;

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Definition {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    /// How many passes a play may make when a wait sends it back (`sentBackBy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    passes: Option<u32>,
    stages: Vec<StageDefinition>,
}

/// The passes a play may make when the definition sends plays back and does not say.
pub const DEFAULT_PASSES: u32 = 3;

/// The most passes a definition may allow: every pass adds its stage changes to a play's
/// history and its nodes to the Workflow.
pub const PASSES_MAX: u32 = 10;

/// A back edge as written: the event, and the earlier stage it sends the play back to.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct SentBackBy {
    #[serde(flatten)]
    event: Awaited,
    to: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StageDefinition {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    released_by: Option<Awaited>,
    /// An event that ends the play `failed` at this wait instead (a failed check at a gate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed_by: Option<Awaited>,
    /// An event that sends the play back to an earlier stage for another pass (a review
    /// requesting changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sent_back_by: Option<SentBackBy>,
}

static DEFAULT: LazyLock<Pipeline> = LazyLock::new(|| {
    // The shipped definition is part of the binary and a unit test parses it: it cannot fail
    // at run time.
    parse(DEFAULT_DEFINITION, "the built-in pipeline").expect("the built-in pipeline is valid")
});

/// The shipped play (workflow-templates/pipeline.yaml).
impl Default for Pipeline {
    fn default() -> Self {
        DEFAULT.clone()
    }
}

/// Reads and checks a definition; `source` names it in errors (a file name). Every refusal is
/// one line that names the field and what is legal there.
pub fn parse(text: &str, source: &str) -> Result<Pipeline> {
    let invalid = |why: String| Error::usage(format!("invalid pipeline {source}: {why}"));
    if text.len() > SIZE_MAX {
        return Err(invalid(format!(
            "it is larger than {SIZE_MAX} bytes, the most a definition may be; is it the right file?"
        )));
    }
    let definition: Definition = serde_yaml::from_str(text).map_err(|err| {
        invalid(format!(
            "{}; see workflow-templates/pipeline.yaml for the shape",
            one_line(&err.to_string())
        ))
    })?;
    definition.into_pipeline().map_err(invalid)
}

/// The definition as one line of JSON, as a play carries it ([`ANNOTATION`]); None for a bare
/// stage order (`--stages`), which names no events and so is no definition.
pub fn to_json(pipeline: &Pipeline) -> Option<String> {
    // A wait without an event (a bare stage order) makes the whole definition none.
    let waits: Option<Vec<Option<Awaited>>> = pipeline
        .stages()
        .map(|name| {
            let stage = pipeline.stage(name);
            match pipeline.awaited(&stage) {
                Some(awaited) => Some(Some(awaited.clone())),
                None if pipeline.is_waiting(&stage) => None,
                None => Some(None),
            }
        })
        .collect();
    let definition = Definition {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: Metadata {
            name: pipeline.name().into(),
        },
        spec: Spec {
            stages: pipeline
                .stages()
                .zip(waits?)
                .map(|(name, released_by)| {
                    let stage = pipeline.stage(name);
                    StageDefinition {
                        name: name.into(),
                        released_by,
                        failed_by: pipeline.failing(&stage).cloned(),
                        sent_back_by: pipeline.sending_back(&stage).map(|back| SentBackBy {
                            event: back.event.clone(),
                            to: back.to.name().into(),
                        }),
                    }
                })
                .collect(),
            passes: (pipeline.back_edges().next().is_some()).then_some(pipeline.passes()),
        },
    };
    // Our own derived types, of strings and enums only: serializing cannot fail.
    Some(serde_json::to_string(&definition).expect("a definition serializes"))
}

/// The pipeline a play carries ([`ANNOTATION`]), or `fallback` for a play that carries none
/// (started before plays carried one, or by hand). One that does not read is refused: a play's
/// stages are never guessed.
pub fn of_play<'a>(meta: &ObjectMeta, fallback: &'a Pipeline) -> Result<Cow<'a, Pipeline>> {
    let Some(text) = meta.annotations.as_ref().and_then(|a| a.get(ANNOTATION)) else {
        return Ok(Cow::Borrowed(fallback));
    };
    carried(text, meta).map(Cow::Owned)
}

fn carried(text: &str, meta: &ObjectMeta) -> Result<Pipeline> {
    let unreadable = |why: String| {
        Error::refused(format!(
            "workflow {} carries a {ANNOTATION} annotation that is no pipeline definition ({why}); \
             the annotation is written once, by the play's first step: an operator of the \
             break-glass group can restore it",
            meta.name.as_deref().unwrap_or("<unnamed>")
        ))
    };
    if text.len() > SIZE_MAX {
        return Err(unreadable("too large".into()));
    }
    let definition: Definition =
        serde_json::from_str(text).map_err(|err| unreadable(one_line(&err.to_string())))?;
    definition.into_pipeline().map_err(unreadable)
}

/// The pipelines of many plays, each definition read once: plays of one pipeline carry the same
/// text, and a list of thousands reads a handful.
pub struct Pipelines {
    fallback: Arc<Pipeline>,
    carried: HashMap<String, Arc<Pipeline>>,
}

impl Pipelines {
    pub fn new(fallback: &Pipeline) -> Self {
        Self {
            fallback: Arc::new(fallback.clone()),
            carried: HashMap::new(),
        }
    }

    /// The play's pipeline; one it carries that does not read is refused.
    pub fn of(&mut self, meta: &ObjectMeta) -> Result<Arc<Pipeline>> {
        let Some(text) = meta.annotations.as_ref().and_then(|a| a.get(ANNOTATION)) else {
            return Ok(self.fallback.clone());
        };
        if let Some(known) = self.carried.get(text) {
            return Ok(known.clone());
        }
        let pipeline = Arc::new(carried(text, meta)?);
        self.carried.insert(text.clone(), pipeline.clone());
        Ok(pipeline)
    }

    /// The play's pipeline, or for one whose carried definition does not read, the fallback:
    /// for showing plays, where one unreadable play must not hide the others.
    pub fn of_or_fallback(&mut self, meta: &ObjectMeta) -> Arc<Pipeline> {
        self.of(meta).unwrap_or_else(|_| self.fallback.clone())
    }
}

impl Definition {
    fn into_pipeline(self) -> std::result::Result<Pipeline, String> {
        self.check()?;
        let mut stages = Vec::new();
        let mut waits = Vec::new();
        let mut failures = Vec::new();
        let mut send_backs = Vec::new();
        let index = |name: &str| {
            let i = self.spec.stages.iter().position(|s| s.name == name);
            // check() found every `to` among the stages.
            u32::try_from(i.unwrap_or_default()).unwrap_or_default()
        };
        let send_back_indices: Vec<Option<u32>> = self
            .spec
            .stages
            .iter()
            .map(|s| s.sent_back_by.as_ref().map(|back| index(&back.to)))
            .collect();
        let loops = send_back_indices.iter().any(Option::is_some);
        let passes = self
            .spec
            .passes
            .unwrap_or(if loops { DEFAULT_PASSES } else { 1 });
        for (stage, to) in self.spec.stages.into_iter().zip(send_back_indices) {
            stages.push(stage.name);
            waits.push(stage.released_by);
            failures.push(stage.failed_by);
            send_backs.push(
                stage
                    .sent_back_by
                    .zip(to)
                    .map(|(back, to)| (back.event, to)),
            );
        }
        Ok(Pipeline::from_parts(
            self.metadata.name,
            stages,
            waits,
            failures,
            send_backs,
            passes,
        ))
    }
}

impl Definition {
    fn check(&self) -> std::result::Result<(), String> {
        if self.api_version != API_VERSION {
            return Err(format!(
                "apiVersion: {:?} is not {API_VERSION:?}",
                shorten(&self.api_version)
            ));
        }
        if self.kind != KIND {
            return Err(format!("kind: {:?} is not {KIND:?}", shorten(&self.kind)));
        }
        let name = &self.metadata.name;
        if !is_dns_label(name) || name.len() > NAME_MAX {
            return Err(format!(
                "metadata.name: {:?} is not a name: use lower-case letters, digits and '-', \
                 starting with a letter, at most {NAME_MAX} characters",
                shorten(name)
            ));
        }
        let stages = &self.spec.stages;
        if stages.len() < 2 {
            return Err(
                "spec.stages: name at least two stages, the first where a play starts \
                        and the last where it ends"
                    .into(),
            );
        }
        for (i, stage) in stages.iter().enumerate() {
            stage.check(i, stages)?;
        }
        let loops = stages.iter().any(|s| s.sent_back_by.is_some());
        match self.spec.passes {
            Some(_) if !loops => Err(
                "spec.passes: no stage sends a play back (sentBackBy), so a play makes one pass: \
                 remove passes"
                    .into(),
            ),
            Some(passes) if !(2..=PASSES_MAX).contains(&passes) => Err(format!(
                "spec.passes: {passes} is no limit a loop can have: a play sent back makes at \
                 least 2 passes; give 2 to {PASSES_MAX}"
            )),
            _ => Ok(()),
        }
    }
}

impl StageDefinition {
    fn check(&self, i: usize, stages: &[StageDefinition]) -> std::result::Result<(), String> {
        let field = |name: &str| format!("spec.stages[{i}].{name}");
        let name = &self.name;
        if name.is_empty() || !is_label_value(name) || name.len() > STAGE_NAME_MAX {
            return Err(format!(
                "{}: {:?} is not a label value: use letters, digits, '-', '_' and '.', \
                 starting and ending with a letter or digit, at most {STAGE_NAME_MAX} characters",
                field("name"),
                shorten(name)
            ));
        }
        if name == FAILED {
            return Err(format!(
                "{}: {FAILED:?} is implied (every unfinished stage may fail) and cannot be listed",
                field("name")
            ));
        }
        if let Some(first) = stages[..i].iter().position(|s| s.name == *name) {
            return Err(format!(
                "{}: {name:?} is spec.stages[{first}] already; each stage appears once",
                field("name")
            ));
        }
        let waits = i > 0 && i + 1 < stages.len();
        match (&self.released_by, waits) {
            (None, true) => Err(format!(
                "{}: stage {name:?} is a wait (every stage between the first and the last is): \
                 name the event that releases it, e.g. {{event: pull-request-opened}}",
                field("releasedBy")
            )),
            (Some(_), false) => Err(self.waits_for_nothing("releasedBy", i)),
            (Some(awaited), true) => check_event(awaited, "releasedBy", i, stages),
            (None, false) => Ok(()),
        }?;
        match (&self.failed_by, waits) {
            (Some(_), false) => Err(self.waits_for_nothing("failedBy", i)),
            (Some(failing), true) => check_event(failing, "failedBy", i, stages),
            (None, _) => Ok(()),
        }?;
        match (&self.sent_back_by, waits) {
            (Some(_), false) => Err(self.waits_for_nothing("sentBackBy", i)),
            (Some(back), true) => {
                check_event(&back.event, "sentBackBy", i, stages)?;
                match stages[..i].iter().position(|s| s.name == back.to) {
                    // A pull request is opened once: a wait for its opening in the passes
                    // after this one would wait for good.
                    Some(to) => match stages[to + 1..=i]
                        .iter()
                        .find(|s| s.released_by == Some(Awaited::PullRequestOpened))
                    {
                        Some(opened) => Err(format!(
                            "{}: stage {:?}, which a play sent back to {:?} passes again, waits \
                             for pull-request-opened, which happens once per pull request: \
                             release it by pull-request-pushed (opened, or pushed to)",
                            field("sentBackBy.to"),
                            opened.name,
                            back.to
                        )),
                        None => Ok(()),
                    },
                    None => Err(format!(
                        "{}: {:?} is no stage before {name:?}: a play is sent back to one of {}",
                        field("sentBackBy.to"),
                        shorten(&back.to),
                        stages[..i]
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
            (None, _) => Ok(()),
        }
    }

    /// The refusal of an event (`what`) named at the first or the last stage.
    fn waits_for_nothing(&self, what: &str, i: usize) -> String {
        format!(
            "spec.stages[{i}].{what}: stage {:?} is the {} stage, which waits for nothing: remove {what}",
            self.name,
            if i == 0 { "first" } else { "last" }
        )
    }

    /// The events this stage names: what releases its wait, what fails it, what sends it back.
    fn events(&self) -> impl Iterator<Item = &Awaited> {
        self.released_by
            .iter()
            .chain(&self.failed_by)
            .chain(self.sent_back_by.iter().map(|back| &back.event))
    }
}

/// An event a stage names (`what`: releasedBy or failedBy): its names well formed, and no event
/// that one named before it could also be, since then what an event does would be a guess.
fn check_event(
    awaited: &Awaited,
    what: &str,
    i: usize,
    stages: &[StageDefinition],
) -> std::result::Result<(), String> {
    let field = format!("spec.stages[{i}].{what}");
    let named = |what: &str, value: &str| {
        if value.is_empty() || value.len() > 100 || value.chars().any(char::is_control) {
            Err(format!(
                "{field}.{what}: {:?} is not a {what} name: 1 to 100 characters, no control characters",
                shorten(value)
            ))
        } else {
            Ok(())
        }
    };
    match awaited {
        Awaited::LabelAdded { label } => named("label", label)?,
        Awaited::WorkflowRunCompleted {
            workflow: Some(workflow),
            ..
        } => named("workflow", workflow)?,
        _ => {}
    }
    // Before this one: the events of earlier stages, and this stage's own events named before
    // this one (releasedBy, then failedBy, then sentBackBy).
    let own_before = stages[i]
        .events()
        .take_while(|e| !std::ptr::eq(*e, awaited));
    let earlier = stages[..i]
        .iter()
        .flat_map(|s| s.events().map(move |e| (s, e)))
        .chain(own_before.map(|e| (&stages[i], e)))
        .find(|(_, e)| e.overlaps(awaited));
    match earlier {
        Some((other, event)) => Err(format!(
            "{field}: {awaited} already {} {:?}; one event decides one wait, one way: give \
             each its own event",
            if other
                .released_by
                .as_ref()
                .is_some_and(|e| std::ptr::eq(e, event))
            {
                "releases"
            } else if other
                .failed_by
                .as_ref()
                .is_some_and(|e| std::ptr::eq(e, event))
            {
                "fails"
            } else {
                "sends back"
            },
            other.name
        )),
        None => Ok(()),
    }
}

/// A DNS label as Kubernetes names objects: lower-case letters, digits and '-', starting with
/// a letter and ending with a letter or digit.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Conclusion, EventFacts, Verdict};

    #[test]
    fn the_shipped_definition_is_the_play() {
        let pipeline = parse(DEFAULT_DEFINITION, "pipeline.yaml").unwrap();
        assert_eq!(pipeline.name(), "play");
        assert_eq!(
            pipeline.to_string(),
            "pending → waiting-pr-created → waiting-ready-for-qa → waiting-pr-approved → completed"
        );
        let waits: Vec<_> = pipeline
            .waiting_stages()
            .map(|stage| pipeline.awaited(&stage).cloned())
            .collect();
        assert_eq!(
            waits,
            [
                Some(Awaited::PullRequestPushed),
                Some(Awaited::LabelAdded {
                    label: "ready-for-qa".into()
                }),
                Some(Awaited::ReviewApproved),
            ]
        );
        let approval = pipeline.stage("waiting-pr-approved");
        let back = pipeline.sending_back(&approval).unwrap();
        assert_eq!(
            (back.event, back.to.name(), pipeline.passes()),
            (&Awaited::ReviewChangesRequested, "pending", 3)
        );
    }

    const GOOD: &str = "apiVersion: stagectl.dev/v1alpha1
kind: Pipeline
metadata:
  name: gated
spec:
  stages:
    - name: pending
    - name: waiting-ci
      releasedBy: {event: workflow-run-completed, conclusion: success, workflow: CI}
    - name: waiting-merge
      releasedBy: {event: pull-request-merged}
    - name: done
";

    #[test]
    fn a_definition_names_its_waits_events() {
        let pipeline = parse(GOOD, "gated.yaml").unwrap();
        assert_eq!(
            pipeline.awaited(&pipeline.stage("waiting-ci")),
            Some(&Awaited::WorkflowRunCompleted {
                conclusion: Conclusion::Success,
                workflow: Some("CI".into())
            })
        );
        assert_eq!(pipeline.awaited(&pipeline.stage("done")), None);
    }

    /// Each field wrong in turn: refused, with one line naming the field and what is legal.
    #[test]
    fn each_field_wrong_in_turn_is_refused_by_name() {
        let cases = [
            (
                "apiVersion: stagectl.dev/v1alpha1",
                "apiVersion: v1",
                "apiVersion",
            ),
            ("kind: Pipeline", "kind: Workflow", "kind:"),
            ("name: gated", "name: Gated_1", "metadata.name"),
            (
                "name: waiting-ci",
                "name: waiting ci",
                "spec.stages[1].name",
            ),
            ("name: done", "name: failed", "spec.stages[3].name"),
            ("name: done", "name: pending", "spec.stages[3].name"),
            (
                "event: pull-request-merged",
                "event: merged",
                "unknown variant",
            ),
            (
                "event: pull-request-merged",
                "event: workflow-run-completed, conclusion: success",
                "already releases \"waiting-ci\"",
            ),
            (
                "conclusion: success, workflow",
                "conclusion: green, workflow",
                "unknown variant",
            ),
            ("workflow: CI", "workflow: \"\"", "releasedBy.workflow"),
            (
                "    - name: done\n",
                "    - name: done\n      releasedBy: {event: review-approved}\n",
                "spec.stages[3].releasedBy",
            ),
            (
                "      releasedBy: {event: pull-request-merged}\n",
                "",
                "spec.stages[2].releasedBy",
            ),
            (
                "    - name: pending\n",
                "    - name: pending\n      color: blue\n",
                "unknown field `color`",
            ),
            (
                "    - name: pending\n",
                "    - name: pending\n      failedBy: {event: pull-request-merged}\n",
                "spec.stages[0].failedBy",
            ),
            (
                "releasedBy: {event: pull-request-merged}\n",
                "releasedBy: {event: pull-request-merged}\n      failedBy: {event: pull-request-merged}\n",
                "spec.stages[2].failedBy: pull request merged already releases \"waiting-merge\"",
            ),
            (
                "releasedBy: {event: pull-request-merged}\n",
                "releasedBy: {event: pull-request-merged}\n      failedBy: {event: workflow-run-completed, conclusion: success}\n",
                "already releases \"waiting-ci\"",
            ),
        ];
        assert_each_refused(GOOD, &cases);
    }

    /// Each case, `good` replaced by `bad` in `text`, is refused with one line that says `named`.
    fn assert_each_refused(text: &str, cases: &[(&str, &str, &str)]) {
        for (good, bad, named) in cases {
            assert!(text.contains(good), "{good}");
            let err = parse(&text.replacen(good, bad, 1), "gated.yaml").unwrap_err();
            let message = err.message();
            assert!(message.contains(named), "{bad}: {message}");
            assert!(!message.contains('\n'), "{message}");
            assert!(
                message.starts_with("invalid pipeline gated.yaml: "),
                "{message}"
            );
        }
    }

    #[test]
    fn a_failed_by_event_is_read_and_carried() {
        let text = GOOD.replace(
            "      releasedBy: {event: workflow-run-completed, conclusion: success, workflow: CI}\n",
            "      releasedBy: {event: workflow-run-completed, conclusion: success, workflow: CI}\n      failedBy: {event: workflow-run-completed, conclusion: failure, workflow: CI}\n",
        );
        let pipeline = parse(&text, "gated.yaml").unwrap();
        let ci = pipeline.stage("waiting-ci");
        let run = |conclusion: &str| EventFacts {
            conclusion: Some(conclusion.into()),
            workflow: Some("CI".into()),
            ..EventFacts::new("workflow_run", "completed")
        };
        assert_eq!(
            pipeline.verdict(&ci, &run("success")),
            Some(Verdict::Releases)
        );
        assert_eq!(pipeline.verdict(&ci, &run("failure")), Some(Verdict::Fails));
        assert_eq!(pipeline.verdict(&ci, &run("cancelled")), None);
        assert_eq!(
            pipeline.decided_by(&run("failure")),
            Some((ci, Verdict::Fails))
        );
        let carried = parse(&to_json(&pipeline).unwrap(), "carried").unwrap();
        assert_eq!(carried, pipeline);
    }

    /// A back edge: read, carried, and each wrong part of it refused by name.
    #[test]
    fn a_sent_back_by_event_is_read_carried_and_checked() {
        let merge = "      releasedBy: {event: pull-request-merged}\n";
        let looped = GOOD.replace(
            merge,
            "      releasedBy: {event: pull-request-merged}\n      sentBackBy: {event: review-changes-requested, to: pending}\n",
        );
        let pipeline = parse(&looped, "gated.yaml").unwrap();
        let gate = pipeline.stage("waiting-merge");
        assert_eq!(pipeline.passes(), DEFAULT_PASSES);
        let back = pipeline.sending_back(&gate).unwrap();
        assert_eq!(back.to, pipeline.first());
        let changes = EventFacts {
            review_state: Some("changes_requested".into()),
            ..EventFacts::new("pull_request_review", "submitted")
        };
        assert_eq!(pipeline.verdict(&gate, &changes), Some(Verdict::SendsBack));
        assert_eq!(
            pipeline.back_edges().collect::<Vec<_>>(),
            [(gate.clone(), pipeline.first())]
        );
        let carried = parse(&to_json(&pipeline).unwrap(), "carried").unwrap();
        assert_eq!(carried, pipeline);
        let limited = looped.replace("spec:\n", "spec:\n  passes: 5\n");
        assert_eq!(parse(&limited, "gated.yaml").unwrap().passes(), 5);

        let cases = [
            (
                "to: pending",
                "to: done",
                "sentBackBy.to: \"done\" is no stage before",
            ),
            ("to: pending", "to: waiting-merge", "is no stage before"),
            (
                "to: pending",
                "to: nowhere",
                "a play is sent back to one of pending, waiting-ci",
            ),
            ("to: pending}", "}", "missing field `to`"),
            (
                "event: review-changes-requested",
                "event: pull-request-merged",
                "already releases \"waiting-merge\"",
            ),
            ("spec:\n", "spec:\n  passes: 1\n", "spec.passes: 1"),
            (
                "      releasedBy: {event: workflow-run-completed, conclusion: success, workflow: CI}\n",
                "      releasedBy: {event: pull-request-opened}\n",
                "waits for pull-request-opened, which happens once per pull request",
            ),
            ("spec:\n", "spec:\n  passes: 11\n", "give 2 to 10"),
        ];
        assert_each_refused(&looped, &cases);
        let message = parse(
            &GOOD.replace("spec:\n", "spec:\n  passes: 3\n"),
            "gated.yaml",
        )
        .unwrap_err()
        .message()
        .to_string();
        assert!(message.contains("no stage sends a play back"), "{message}");
        let first = GOOD.replace(
            "    - name: pending\n",
            "    - name: pending\n      sentBackBy: {event: review-changes-requested, to: pending}\n",
        );
        let message = parse(&first, "gated.yaml")
            .unwrap_err()
            .message()
            .to_string();
        assert!(message.contains("spec.stages[0].sentBackBy"), "{message}");
    }

    #[test]
    fn a_play_carries_its_definition_and_is_read_by_it() {
        let gated = parse(GOOD, "gated.yaml").unwrap();
        let json = to_json(&gated).unwrap();
        assert!(!json.contains('\n'));
        let meta = |text: &str| ObjectMeta {
            name: Some("play-1".into()),
            annotations: Some([(ANNOTATION.to_string(), text.to_string())].into()),
            ..ObjectMeta::default()
        };
        let default = Pipeline::default();
        assert_eq!(*of_play(&meta(&json), &default).unwrap(), gated);
        assert_eq!(
            *of_play(&ObjectMeta::default(), &default).unwrap(),
            default,
            "a play that carries none is the fallback's"
        );
        let err = of_play(&meta("{\"kind\": 1}"), &default).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Refused);
        assert!(err.message().contains("play-1"), "{}", err.message());
        assert_eq!(to_json(&Pipeline::parse("a,b,c").unwrap()), None);

        let mut pipelines = Pipelines::new(&default);
        let first = pipelines.of(&meta(&json)).unwrap();
        let again = pipelines.of(&meta(&json)).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "read once");
        assert_eq!(*pipelines.of_or_fallback(&meta("nonsense")), default);
    }

    #[test]
    fn what_is_no_definition_at_all_is_refused() {
        for text in [
            "",
            "[1, 2",
            "stages: [a, b]",
            "\u{0}",
            &"a: ".repeat(200_000),
        ] {
            let err = parse(text, "x.yaml").unwrap_err();
            assert!(!err.message().contains('\n'), "{}", err.message());
        }
    }
}
