//! Whether a directory of manifests agrees with a pipeline definition: the play's template
//! waits exactly once at each waiting stage and sets only the definition's stages, and the
//! Sensors are exactly those the definition renders. `stagectl pipeline check` reads the files;
//! this decides, on documents already parsed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::pipeline;
use crate::render::Manifest;
use crate::stage::{FAILED, Pipeline};

/// One manifest file, read: its name in the directory, its text, and its YAML documents.
pub struct ManifestFile {
    pub file: String,
    pub text: String,
    pub documents: Vec<Value>,
}

/// What disagrees, one line each, in the order found; empty when everything agrees.
pub fn check(pipeline: &Pipeline, files: &[ManifestFile]) -> Vec<String> {
    let mut problems = Vec::new();
    let plays: Vec<(&ManifestFile, &Value)> = files
        .iter()
        .flat_map(|file| file.documents.iter().map(move |doc| (file, doc)))
        .filter(|(_, doc)| is_play_template(doc))
        .collect();
    if plays.is_empty() {
        problems.push(
            "no workflow template waits at a stage: a play's template has a suspend template \
             with a `stage` input"
                .to_string(),
        );
    }
    for (file, doc) in plays {
        problems.extend(
            check_template(pipeline, doc)
                .into_iter()
                .map(|problem| format!("{}: {problem}", file.file)),
        );
    }
    problems.extend(check_rendered(
        &crate::render::manifests(pipeline),
        files,
        pipeline,
    ));
    problems
}

fn templates(doc: &Value) -> &[Value] {
    let spec = &doc["spec"];
    let spec = if spec["workflowSpec"].is_object() {
        &spec["workflowSpec"]
    } else {
        spec
    };
    spec["templates"].as_array().map_or(&[], Vec::as_slice)
}

fn name_of(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("<unnamed>")
}

fn has_input(template: &Value, name: &str) -> bool {
    template["inputs"]["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["name"] == name))
}

fn stage_input(template: &Value) -> bool {
    has_input(template, crate::argo::STAGE_PARAMETER)
}

/// A suspend template with a `stage` input: how `stagectl resume` finds a wait.
fn is_wait(template: &Value) -> bool {
    template.get("suspend").is_some() && stage_input(template)
}

fn is_play_template(doc: &Value) -> bool {
    templates(doc).iter().any(is_wait)
}

/// What a template's container does to the stage: `stagectl set STAGE` with a literal stage,
/// or with its `stage` input.
enum Sets {
    Literal(String),
    Input,
}

fn sets(template: &Value) -> Option<Sets> {
    let args = template["container"]["args"].as_array()?;
    if args.first()? != "set" {
        return None;
    }
    let stage = args.get(1)?.as_str()?;
    Some(if stage == "{{inputs.parameters.stage}}" {
        Sets::Input
    } else {
        Sets::Literal(stage.to_string())
    })
}

/// The definition a stage step is given: none (stagectl's built-in play), inline (its JSON), or
/// a file (which a check cannot read).
enum Given {
    BuiltIn,
    Inline(String),
    File(String),
}

fn given(template: &Value) -> Given {
    let args: Vec<&str> = template["container"]["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let flag = args.iter().enumerate().find_map(|(i, arg)| {
        arg.strip_prefix("--pipeline=").or_else(|| {
            (*arg == "--pipeline")
                .then(|| args.get(i + 1).copied())
                .flatten()
        })
    });
    let env = template["container"]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|var| var["name"] == pipeline::PIPELINE_ENV)
        .and_then(|var| var["value"].as_str());
    match flag.or(env) {
        None => Given::BuiltIn,
        Some(value) if value.trim_start().starts_with('{') => Given::Inline(value.to_string()),
        Some(value) => Given::File(value.to_string()),
    }
}

/// Whether the play's first step records this pipeline: the definition its stage step is given
/// is the one checked against (the play carries what that step was given).
fn records(pipeline: &Pipeline, template: &Value, play: &str) -> Option<String> {
    let name = template["name"].as_str().unwrap_or("<unnamed>");
    let wanted = pipeline::to_json(pipeline)?;
    let built_in = pipeline::to_json(&Pipeline::default());
    let hint = "pass it inline: --pipeline='<the line `stagectl pipeline definition` prints>'";
    match given(template) {
        Given::BuiltIn if built_in.as_deref() == Some(wanted.as_str()) => None,
        Given::BuiltIn => Some(format!(
            "template {play}: step {name} runs under stagectl's built-in play, so its plays \
             would carry that, not pipeline {}; {hint}",
            pipeline.name()
        )),
        Given::File(path) => Some(format!(
            "template {play}: step {name} is given the definition in file {path}, which a check \
             cannot read; {hint}"
        )),
        Given::Inline(text) => {
            let same = pipeline::parse(&text, "inline")
                .ok()
                .and_then(|given| pipeline::to_json(&given))
                == Some(wanted);
            (!same).then(|| {
                format!(
                    "template {play}: step {name} is given another definition than pipeline {}; {hint}",
                    pipeline.name()
                )
            })
        }
    }
}

/// A call of a template by a DAG task or a step.
struct Task<'a> {
    name: &'a str,
    called: &'a str,
    /// The `stage` argument it passes.
    stage: Option<&'a str>,
    when: &'a str,
    /// The tasks it runs after: those its `depends` or `dependencies` name, or for a step every
    /// step of the groups before its own.
    after: BTreeSet<&'a str>,
}

impl<'a> Task<'a> {
    fn read(call: &'a Value) -> Option<Self> {
        let stage = call["arguments"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "stage")
            .and_then(|p| p["value"].as_str());
        // `depends` is an expression over task names (`a && (b.Succeeded || c)`).
        let depends = call["depends"]
            .as_str()
            .unwrap_or_default()
            .split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
            .filter_map(|word| word.split('.').next())
            .filter(|name| !name.is_empty());
        let dependencies = call["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        Some(Self {
            name: call["name"].as_str().unwrap_or_default(),
            called: call["template"].as_str()?,
            stage,
            when: call["when"].as_str().unwrap_or_default(),
            after: depends.chain(dependencies).collect(),
        })
    }
}

/// The calls of a DAG or steps template.
fn tasks(template: &Value) -> Vec<Task<'_>> {
    let mut tasks: Vec<Task> = template["dag"]["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Task::read)
        .collect();
    let mut before: BTreeSet<&str> = BTreeSet::new();
    for group in template["steps"].as_array().into_iter().flatten() {
        let steps: Vec<Task> = group
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Task::read)
            .map(|step| Task {
                after: before.clone(),
                ..step
            })
            .collect();
        before.extend(steps.iter().map(|step| step.name));
        tasks.extend(steps);
    }
    tasks
}

/// The calls that would run after the wait at `stage` once it has sent the play back, in the
/// pass that is over: every call in the same template after the wait that is neither a stage
/// step nor a wait (an agent, or a template that may run one) and runs whatever the pass —
/// not only `when` a stage step's `pass` output (`set --pass N --pass-file`) says it goes on.
fn run_in_a_pass_over<'a>(
    by_name: &BTreeMap<&str, &Value>,
    templates: &'a [Value],
    stage: &str,
) -> Vec<&'a str> {
    let stage_step = |called: &str| by_name.get(called).is_some_and(|t| sets(t).is_some());
    // The templates that wait at the stage, themselves or in a template they call: what runs
    // after a call of one runs after the wait too.
    let waiting_at = |task: &Task, holding: &BTreeSet<&str>| {
        (task.stage == Some(stage) && by_name.get(task.called).is_some_and(|c| is_wait(c)))
            || holding.contains(task.called)
    };
    let mut holding: BTreeSet<&str> = BTreeSet::new();
    while let Some(more) = templates.iter().find_map(|t| {
        let name = t["name"].as_str()?;
        (!holding.contains(name) && tasks(t).iter().any(|task| waiting_at(task, &holding)))
            .then_some(name)
    }) {
        holding.insert(more);
    }
    let mut found = Vec::new();
    for template in templates {
        let tasks = tasks(template);
        let mut after: BTreeSet<&str> = tasks
            .iter()
            .filter(|t| waiting_at(t, &holding))
            .map(|t| t.name)
            .collect();
        if after.is_empty() {
            continue;
        }
        let waits = after.clone();
        while let Some(next) = tasks
            .iter()
            .find(|t| !after.contains(t.name) && !t.after.is_disjoint(&after))
        {
            after.insert(next.name);
        }
        let asks = |when: &str| {
            tasks.iter().filter(|t| stage_step(t.called)).any(|t| {
                ["tasks", "steps"].iter().any(|kind| {
                    when.contains(&format!(
                        "{kind}.{}.outputs.parameters.{}",
                        t.name,
                        crate::argo::PASS_PARAMETER
                    ))
                })
            })
        };
        found.extend(
            tasks
                .iter()
                .filter(|t| after.contains(t.name) && !waits.contains(t.name))
                .filter(|t| {
                    !stage_step(t.called) && !by_name.get(t.called).is_some_and(|c| is_wait(c))
                })
                .filter(|t| !asks(t.when))
                .map(|t| t.name),
        );
    }
    found
}

fn check_template(pipeline: &Pipeline, doc: &Value) -> Vec<String> {
    let templates = templates(doc);
    let by_name: BTreeMap<&str, &Value> = templates
        .iter()
        .filter_map(|t| Some((t["name"].as_str()?, t)))
        .collect();
    let mut waits: BTreeMap<String, usize> = BTreeMap::new();
    let mut set: BTreeSet<String> = BTreeSet::new();
    let mut problems = Vec::new();
    let play = name_of(doc);
    for template in templates {
        if let Some(Sets::Literal(stage)) = sets(template) {
            set.insert(stage);
        }
        if pipeline.passes() > 1
            && is_wait(template)
            && !has_input(template, crate::argo::PASS_PARAMETER)
        {
            problems.push(format!(
                "template {play}: wait template {} has no `{}` input: pipeline {} sends plays \
                 back, and `stagectl resume` finds each pass's wait by it",
                template["name"].as_str().unwrap_or("<unnamed>"),
                crate::argo::PASS_PARAMETER,
                pipeline.name()
            ));
        }
        for Task { called, stage, .. } in tasks(template) {
            let Some(callee) = by_name.get(called) else {
                continue;
            };
            let waiting = is_wait(callee);
            let setting = matches!(sets(callee), Some(Sets::Input));
            if !waiting && !setting {
                continue;
            }
            let Some(stage) = stage.filter(|s| !s.contains("{{")) else {
                problems.push(format!(
                    "template {play}: a call of {called} passes no literal stage; \
                     name the stage itself so that it can be checked"
                ));
                continue;
            };
            if waiting {
                *waits.entry(stage.to_string()).or_default() += 1;
            } else {
                if stage == pipeline.first().name() {
                    problems.extend(records(pipeline, callee, play));
                }
                set.insert(stage.to_string());
            }
        }
    }
    for stage in pipeline.waiting_stages() {
        match waits.get(stage.name()).copied().unwrap_or(0) {
            1 => {}
            0 => problems.push(format!(
                "template {play} has no suspend node at waiting stage {stage}: its event \
                 would release nothing"
            )),
            n => problems.push(format!(
                "template {play} waits at {stage} {n} times; a resume releases one node, so \
                 wait once"
            )),
        }
    }
    for stage in waits.keys() {
        if !pipeline.is_waiting(&pipeline.stage(stage)) {
            problems.push(format!(
                "template {play} waits at {stage:?}, which is no waiting stage of pipeline {}: \
                 no event would release it",
                pipeline.name()
            ));
        }
    }
    for stage in &set {
        if stage != FAILED && !pipeline.stage(stage).is_known() {
            problems.push(format!(
                "template {play} sets {stage:?}, which is no stage of pipeline {} ({pipeline})",
                pipeline.name()
            ));
        }
    }
    for (from, _) in pipeline.back_edges() {
        let over = run_in_a_pass_over(&by_name, templates, from.name());
        if !over.is_empty() {
            problems.push(format!(
                "template {play}: {} would run after the wait at {from} once it sent the play \
                 back, in a pass that is over: run {} only `when` a stage step after the wait \
                 says the pass goes on (its --pass-file output still the pass; \
                 examples/pipelines/gated does)",
                over.join(", "),
                if over.len() == 1 { "it" } else { "them" }
            ));
        }
    }
    let stages = [pipeline.first()]
        .into_iter()
        .chain(pipeline.waiting_stages())
        .chain([pipeline.last()]);
    for stage in stages {
        if !set.contains(stage.name()) {
            problems.push(format!(
                "template {play} never sets {stage}: a play could not enter it"
            ));
        }
    }
    problems
}

/// Kinds only `render` writes: one elsewhere was written by hand, or for another pipeline.
const RENDERED_KINDS: [&str; 4] = [
    "Sensor",
    "EventSource",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
];

fn check_rendered(
    rendered: &[Manifest],
    files: &[ManifestFile],
    pipeline: &Pipeline,
) -> Vec<String> {
    let mut problems = Vec::new();
    for manifest in rendered {
        match files.iter().find(|f| f.file == manifest.file) {
            None => problems.push(format!(
                "{} is missing: pipeline {} renders it",
                manifest.file,
                pipeline.name()
            )),
            Some(file) if file.text != manifest.text => problems.push(format!(
                "{} is not what pipeline {} renders",
                manifest.file,
                pipeline.name()
            )),
            Some(_) => {}
        }
    }
    for file in files {
        let rendered = rendered.iter().any(|m| m.file == file.file);
        let foreign = file.documents.iter().filter(|doc| {
            RENDERED_KINDS
                .iter()
                .any(|kind| doc["kind"].as_str() == Some(kind))
        });
        for object in foreign.filter(|_| !rendered) {
            problems.push(format!(
                "{}: {} {} is not one pipeline {} renders: remove it",
                file.file,
                object["kind"].as_str().unwrap_or_default(),
                name_of(object),
                pipeline.name()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn play(calls: Value) -> Value {
        json!({
            "kind": "WorkflowTemplate",
            "metadata": {"name": "play"},
            "spec": {"templates": [
                {"name": "main", "dag": {"tasks": calls}},
                {"name": "set-stage", "inputs": {"parameters": [{"name": "stage"}]},
                 "container": {"args": ["set", "{{inputs.parameters.stage}}"]}},
                {"name": "wait", "inputs": {"parameters": [{"name": "stage"}, {"name": "pass"}]}, "suspend": {}},
                {"name": "mark-failed", "container": {"args": ["set", "failed"]}},
            ]},
        })
    }

    fn call(template: &str, stage: &str) -> Value {
        json!({"name": format!("{template}-{stage}"), "template": template,
               "arguments": {"parameters": [{"name": "stage", "value": stage}]}})
    }

    fn the_play() -> Vec<Value> {
        let pipeline = Pipeline::default();
        let mut calls = vec![call("set-stage", "pending")];
        for stage in pipeline.waiting_stages() {
            calls.push(call("set-stage", stage.name()));
            calls.push(call("wait", stage.name()));
        }
        calls.push(call("set-stage", "completed"));
        calls
    }

    fn problems(calls: Vec<Value>) -> Vec<String> {
        check_template(&Pipeline::default(), &play(Value::Array(calls)))
    }

    #[test]
    fn a_template_that_waits_once_at_each_wait_agrees() {
        assert_eq!(problems(the_play()), Vec::<String>::new());
    }

    #[test]
    fn each_disagreement_is_named() {
        let mut twice = the_play();
        twice.push(call("wait", "waiting-pr-approved"));
        assert!(problems(twice)[0].contains("waiting-pr-approved 2 times"));

        let missing: Vec<Value> = the_play()
            .into_iter()
            .filter(|c| c["name"] != "wait-waiting-ready-for-qa")
            .collect();
        assert!(
            problems(missing)[0].contains("no suspend node at waiting stage waiting-ready-for-qa")
        );

        let mut foreign = the_play();
        foreign.push(call("wait", "waiting-ci"));
        foreign.push(call("set-stage", "waiting-ci"));
        let found = problems(foreign);
        assert!(
            found.iter().any(|p| p.contains("waits at \"waiting-ci\"")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.contains("sets \"waiting-ci\"")),
            "{found:?}"
        );

        let unset: Vec<Value> = the_play()
            .into_iter()
            .filter(|c| c["name"] != "set-stage-completed")
            .collect();
        assert!(problems(unset)[0].contains("never sets completed"));

        let mut templated = the_play();
        templated.push(call("wait", "{{workflow.parameters.stage}}"));
        assert!(problems(templated)[0].contains("no literal stage"));

        // The play loops: a wait without its pass could not be told from the last pass's.
        let mut passless = play(Value::Array(the_play()));
        passless["spec"]["templates"][2]["inputs"]["parameters"] = json!([{"name": "stage"}]);
        let found = check_template(&Pipeline::default(), &passless);
        assert!(
            found.len() == 1 && found[0].contains("wait template wait has no `pass` input"),
            "{found:?}"
        );
    }

    /// A wait that sends plays back before the end of a pass: no agent may run after it unless
    /// a stage step after the wait says the pass goes on.
    #[test]
    fn after_a_wait_that_sends_plays_back_agents_run_only_if_the_pass_goes_on() {
        let ci = pipeline::parse(
            r#"{"apiVersion": "stagectl.dev/v1alpha1", "kind": "Pipeline", "metadata": {"name": "ci"},
                "spec": {"stages": [{"name": "pending"},
                  {"name": "waiting-pr-created", "releasedBy": {"event": "pull-request-pushed"}},
                  {"name": "waiting-ci", "releasedBy": {"event": "check-suite-completed", "conclusion": "success"},
                   "sentBackBy": {"event": "check-suite-completed", "conclusion": "failure", "to": "pending"}},
                  {"name": "waiting-pr-approved", "releasedBy": {"event": "review-approved"}},
                  {"name": "completed"}]}}"#,
            "test",
        )
        .unwrap();
        let agent = |name: &str| json!({"name": name, "template": "agent"});
        // Each task after the one before it, as a pass's DAG runs them.
        let chained = |calls: Vec<Value>| -> Value {
            let mut previous: Option<String> = None;
            let calls = calls
                .into_iter()
                .map(|mut call| {
                    if let Some(before) = previous.replace(call["name"].as_str().unwrap().into()) {
                        call["depends"] = json!(before);
                    }
                    call
                })
                .collect();
            Value::Array(calls)
        };
        let mut pass = vec![call("set-stage", "pending"), agent("rex")];
        for stage in ci.waiting_stages() {
            pass.push(call("set-stage", stage.name()));
            pass.push(call("wait", stage.name()));
            if stage.name() == "waiting-ci" {
                pass.push(agent("tess"));
            }
        }
        pass.push(call("set-stage", "completed"));
        let mut doc = play(chained(pass.clone()));
        let templates = doc["spec"]["templates"].as_array_mut().unwrap();
        templates[1]["container"]["args"] = json!([
            "set",
            "{{inputs.parameters.stage}}",
            format!("--pipeline={}", pipeline::to_json(&ci).unwrap())
        ]);
        templates.push(json!({"name": "agent", "container": {"image": "agent"}}));
        let found = check_template(&ci, &doc);
        assert!(
            found.len() == 1
                && found[0].contains(
                    "tess would run after the wait at waiting-ci once it sent the play back"
                ),
            "{found:?}"
        );
        // A stage step after the wait, but its answer read by no `when`: Tess still runs.
        let mut guard = call("set-stage", "waiting-ci");
        guard["name"] = json!("ci-decided");
        let at = pass.iter().position(|c| c["name"] == "tess").unwrap();
        pass.insert(at, guard);
        doc["spec"]["templates"][0]["dag"]["tasks"] = chained(pass.clone());
        assert_eq!(check_template(&ci, &doc).len(), 1);
        // Tess runs only when it says the pass goes on.
        pass[at + 1]["when"] =
            json!("{{tasks.ci-decided.outputs.parameters.pass}} == {{inputs.parameters.pass}}");
        doc["spec"]["templates"][0]["dag"]["tasks"] = chained(pass.clone());
        assert_eq!(check_template(&ci, &doc), Vec::<String>::new());

        // The gate in a template of its own: what its caller runs after it runs after the wait.
        let gate = ["set-stage-waiting-ci", "wait-waiting-ci"];
        let mut nested: Vec<Value> = pass
            .iter()
            .filter(|c| !gate.contains(&c["name"].as_str().unwrap()) && c["name"] != "ci-decided")
            .cloned()
            .collect();
        let tess = nested.iter().position(|c| c["name"] == "tess").unwrap();
        nested[tess]["when"] = json!(null);
        nested.insert(tess, json!({"name": "gate", "template": "ci-gate"}));
        doc["spec"]["templates"][0]["dag"]["tasks"] = chained(nested);
        let gate_calls: Vec<Value> = gate
            .iter()
            .map(|name| pass.iter().find(|c| c["name"] == *name).unwrap().clone())
            .collect();
        doc["spec"]["templates"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "ci-gate", "dag": {"tasks": chained(gate_calls)}}));
        let found = check_template(&ci, &doc);
        assert!(
            found.len() == 1
                && found[0]
                    .starts_with("template play: tess would run after the wait at waiting-ci"),
            "{found:?}"
        );
    }

    #[test]
    fn the_first_step_must_be_given_the_definition_checked_against() {
        let step = |args: Value| json!({"name": "set-stage", "container": {"args": args}});
        let built_in = Pipeline::default();
        let gated = crate::fixtures::gated();
        let inline = pipeline::to_json(&gated).unwrap();

        assert_eq!(
            records(&built_in, &step(json!(["set", "pending"])), "play"),
            None
        );
        let found = records(&gated, &step(json!(["set", "pending"])), "play").unwrap();
        assert!(found.contains("built-in play"), "{found}");

        let flag = format!("--pipeline={inline}");
        assert_eq!(
            records(&gated, &step(json!(["set", flag, "pending"])), "play"),
            None
        );
        let separate = json!(["--pipeline", inline, "set", "pending"]);
        assert_eq!(records(&gated, &step(separate), "play"), None);
        let env = json!({"name": "set-stage", "container": {"args": ["set", "pending"],
            "env": [{"name": pipeline::PIPELINE_ENV, "value": inline}]}});
        assert_eq!(records(&gated, &env, "play"), None);

        let other = format!("--pipeline={}", pipeline::to_json(&built_in).unwrap());
        let found = records(&gated, &step(json!(["set", other])), "play").unwrap();
        assert!(found.contains("another definition"), "{found}");
        let found = records(
            &gated,
            &step(json!(["set", "--pipeline=/etc/gated.yaml"])),
            "play",
        );
        assert!(found.unwrap().contains("file /etc/gated.yaml"));
    }

    #[test]
    fn rendered_manifests_must_be_exactly_the_rendered_ones() {
        let pipeline = Pipeline::default();
        let rendered = crate::render::manifests(&pipeline);
        let file = |manifest: &Manifest| ManifestFile {
            file: manifest.file.clone(),
            text: manifest.text.clone(),
            documents: vec![json!({"kind": "Sensor", "metadata": {"name": "x"}})],
        };
        let mut files: Vec<ManifestFile> = rendered.iter().map(file).collect();
        assert!(check_rendered(&rendered, &files, &pipeline).is_empty());
        files[0].text.push_str("# edited\n");
        files.push(ManifestFile {
            file: "sensor-waiting-ci.yaml".into(),
            text: String::new(),
            documents: vec![json!({"kind": "Sensor", "metadata": {"name": "play-ci"}})],
        });
        files.retain(|f| f.file != "sensor-waiting-ready-for-qa.yaml");
        let found = check_rendered(&rendered, &files, &pipeline);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("stage-machine-policy.yaml is not what"));
        assert!(found[1].contains("sensor-waiting-ready-for-qa.yaml is missing"));
        assert!(found[2].contains("Sensor play-ci is not one pipeline play renders"));
    }
}
