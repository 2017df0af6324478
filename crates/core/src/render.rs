//! The manifests a pipeline definition implies, as text: one Sensor per wait. Written by
//! `stagectl pipeline render`; `make test` checks that workflow-templates/ holds exactly what
//! this renders for the shipped definition, so that neither can change without the other.

use std::fmt::Write as _;

use crate::event::{Awaited, Verdict};
use crate::reconcile::outputs;
use crate::stage::{Pipeline, Stage};

/// The task-id rule (workflow-templates/task-id.jq): every Sensor carries it as its
/// dependency's transform, and tests/vectors/task-id.json holds the cases it and the Rust rule
/// must both give.
pub const TASK_ID_RULE: &str = include_str!("../../../workflow-templates/task-id.jq");

/// A rendered manifest and the file it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub file: String,
    pub text: String,
}

/// The stage-resume template's parameters, in the order a Sensor's Workflow passes them; the
/// facts of the event follow these.
const RESUME_PARAMETERS: [&str; 5] = ["stage", "task-id", "repository", "delivery-id", "event"];

/// The stage-machine policy, with the places a pipeline fills in marked `@NAME@`, `@STAGES@`.
const POLICY_TEMPLATE: &str = include_str!("../templates/stage-machine-policy.yaml");

/// The file the stage-machine policy and its binding are written to.
pub const POLICY_FILE: &str = "stage-machine-policy.yaml";

/// The GitHub EventSource, with the events of the pipeline's waits in place of `@EVENTS@`.
const EVENT_SOURCE_TEMPLATE: &str = include_str!("../templates/github-eventsource.yaml");

/// The reconcile CronWorkflow, with the places a pipeline fills in marked `@NAME@`,
/// `@OUTPUTS@`, `@RECOVERED@`, `@GAUGES@` and `@PIPELINE@`.
const RECONCILE_CRON_TEMPLATE: &str = include_str!("../templates/reconcile-cronworkflow.yaml");

/// What every pipeline installs as it is, whatever its definition: the accounts and Roles, the
/// stage-resume template the Sensors start, and where kustomize finds Argo's images. workflow-templates/ holds them; a pipeline's directory gets a copy.
const SHARED: [(&str, &str); 3] = [
    (
        "rbac.yaml",
        include_str!("../../../workflow-templates/rbac.yaml"),
    ),
    (
        "stage-resume-template.yaml",
        include_str!("../../../workflow-templates/stage-resume-template.yaml"),
    ),
    (
        "kustomizeconfig.yaml",
        include_str!("../../../workflow-templates/kustomizeconfig.yaml"),
    ),
];

/// The kustomization, with the pipeline's name and its resources in place of `@NAME@` and
/// `@RESOURCES@`.
const KUSTOMIZATION_TEMPLATE: &str = include_str!("../templates/kustomization.yaml");

/// kustomize's own files among the rendered ones: its input, not objects of the cluster.
pub const KUSTOMIZE_FILES: [&str; 2] = ["kustomization.yaml", "kustomizeconfig.yaml"];

/// The file of the play's template, which a team writes and the kustomization lists.
pub const PLAY_TEMPLATE_FILE: &str = "play-workflow-template.yaml";

/// Every manifest of a pipeline's directory but its play template: the stage-machine policy,
/// the EventSource, the reconcile CronWorkflow, the Sensors in the order of the waits (a wait's `failedBy` Sensor after its
/// `releasedBy` one), what every pipeline shares, and the kustomization that installs them.
pub fn manifests(pipeline: &Pipeline) -> Vec<Manifest> {
    let mut manifests = pipeline_manifests(pipeline);
    manifests.extend(SHARED.iter().map(|(file, text)| Manifest {
        file: file.to_string(),
        text: text.to_string(),
    }));
    manifests.push(kustomization(pipeline, &manifests));
    manifests
}

/// `kubectl apply -k`'s list: the files in the order they are applied, the play's template
/// among them.
fn kustomization(pipeline: &Pipeline, manifests: &[Manifest]) -> Manifest {
    let first = [
        "rbac.yaml",
        POLICY_FILE,
        PLAY_TEMPLATE_FILE,
        "stage-resume-template.yaml",
        "reconcile-cronworkflow.yaml",
    ];
    let events = manifests
        .iter()
        .map(|m| m.file.as_str())
        .filter(|name| *name == "github-eventsource.yaml" || name.starts_with("sensor-"));
    let resources: String = first
        .into_iter()
        .chain(events)
        .map(|name| format!("  - {name}\n"))
        .collect();
    Manifest {
        file: "kustomization.yaml".to_string(),
        text: KUSTOMIZATION_TEMPLATE
            .replace("@NAME@", pipeline.name())
            .replace("@RESOURCES@\n", &resources),
    }
}

/// What the definition itself renders: the policy, the EventSource, the reconcile CronWorkflow
/// and the Sensors.
fn pipeline_manifests(pipeline: &Pipeline) -> Vec<Manifest> {
    let sensors = pipeline.waiting_stages().flat_map(|stage| {
        pipeline
            .decisions(&stage)
            .map(|(awaited, verdict)| Manifest {
                file: format!("sensor-{}{}.yaml", stage.name(), sensor_suffix(verdict)),
                text: sensor(pipeline, &stage, awaited, verdict),
            })
            .collect::<Vec<_>>()
    });
    [
        policy(pipeline),
        event_source(pipeline),
        reconcile_cron(pipeline),
    ]
    .into_iter()
    .chain(sensors)
    .collect()
}

/// The CronWorkflow that runs `stagectl reconcile` every minute: an output parameter for each
/// file the run writes, two gauges for each waiting stage of the pipeline, and the definition
/// itself for the run (a bare stage order has none). A parameter name allows no `.`, which a
/// stage name may hold, so a stage's parameters are named by its place in the pipeline.
pub fn reconcile_cron(pipeline: &Pipeline) -> Manifest {
    type Gauge = (
        &'static str,
        &'static str,
        &'static str,
        fn(&Stage) -> String,
    );
    const GAUGES: [Gauge; 2] = [
        (
            "stagectl_plays_waiting",
            "Plays waiting at a stage after the last reconcile run.",
            "waiting",
            outputs::waiting,
        ),
        (
            "stagectl_oldest_wait_seconds",
            "How long the play waiting longest at a stage has waited, at the last reconcile run.",
            "oldest-wait-seconds",
            outputs::oldest_wait_seconds,
        ),
    ];
    let parameter = |name: &str, file: &str| {
        format!(
            "            - {{name: {name}, valueFrom: {{path: /tmp/outputs/{file}, default: \"0\"}}}}\n"
        )
    };
    let mut parameters = parameter(outputs::RECOVERED, outputs::RECOVERED);
    let mut metrics = String::new();
    for (metric, help, prefix, file) in GAUGES {
        for (place, stage) in pipeline.waiting_stages().enumerate() {
            let name = format!("{prefix}-{}", place + 1);
            parameters.push_str(&parameter(&name, &file(&stage)));
            let _ = write!(
                metrics,
                "            - name: {metric}
              help: {help}
              labels:
                - {{key: stage, value: {stage}}}
              gauge:
                value: \"{{{{outputs.parameters.{name}}}}}\"
                realtime: false
",
                stage = plain(stage.name()),
            );
        }
    }
    // Inside single quotes YAML escapes only the quote itself (a label a wait names may hold one).
    let definition = crate::pipeline::to_json(pipeline)
        .map(|json| format!("            - '--pipeline={}'\n", json.replace('\'', "''")))
        .unwrap_or_default();
    Manifest {
        file: "reconcile-cronworkflow.yaml".to_string(),
        text: RECONCILE_CRON_TEMPLATE
            .replace("@NAME@", pipeline.name())
            .replace("@OUTPUTS@\n", &parameters)
            .replace("@RECOVERED@", outputs::RECOVERED)
            .replace("@GAUGES@\n", &metrics)
            .replace("@PIPELINE@\n", &definition),
    }
}

/// The EventSource that receives GitHub's webhooks: only the kinds of events the pipeline's
/// waits name, so that GitHub's other deliveries go no further than it.
pub fn event_source(pipeline: &Pipeline) -> Manifest {
    let mut events: Vec<&str> = pipeline
        .waiting_stages()
        .flat_map(|stage| {
            pipeline
                .decisions(&stage)
                .map(|(awaited, _)| awaited.github_event())
                .collect::<Vec<_>>()
        })
        .collect();
    events.sort_unstable();
    events.dedup();
    let list: String = events
        .iter()
        .map(|event| format!("        - {event}\n"))
        .collect();
    Manifest {
        file: "github-eventsource.yaml".to_string(),
        text: EVENT_SOURCE_TEMPLATE
            .replace("@NAME@", pipeline.name())
            .replace("@EVENT_LIST@", &events.join(", "))
            .replace("@EVENTS@\n", &list),
    }
}

/// The ValidatingAdmissionPolicy that holds every writer to the pipeline's stage machine, and
/// its binding. The stage order is a CEL list literal: stage names are label values, which
/// need no escaping inside single quotes.
pub fn policy(pipeline: &Pipeline) -> Manifest {
    let stages: Vec<String> = pipeline
        .stages()
        .map(|stage| format!("'{stage}'"))
        .collect();
    let back_edges: Vec<String> = crate::pass::back_edges(pipeline)
        .iter()
        .map(|edge| format!("'{edge}'"))
        .collect();
    Manifest {
        file: POLICY_FILE.to_string(),
        text: POLICY_TEMPLATE
            .replace("@NAME@", pipeline.name())
            .replace("@STAGES@", &format!("[{}]", stages.join(", ")))
            .replace("@BACK_EDGES@", &format!("[{}]", back_edges.join(", ")))
            .replace("@PASSES@", &pipeline.passes().to_string()),
    }
}

/// The Sensor of one wait and one verdict: it starts a stage-resume workflow for each delivery
/// that releases the wait (or fails the play there), and for nothing else.
fn sensor(pipeline: &Pipeline, stage: &Stage, awaited: &Awaited, verdict: Verdict) -> String {
    let name = format!("{}{}", sensor_name(pipeline, stage), sensor_suffix(verdict));
    let does = match verdict {
        Verdict::Releases => "resumes the play's wait",
        Verdict::Fails => "fails the play at its wait",
        Verdict::SendsBack => {
            "ends the play's wait by sending it back for another pass (failing it in its last)"
        }
    };
    let dependency = dependency_name(awaited);
    let mut out = String::new();
    let w = &mut out;
    // Writing to a String cannot fail.
    let _ = write!(
        w,
        "\
# {what}.
# It starts a stage-resume workflow that runs `stagectl resume --stage {stage}` for the task,
# which {does}, or latches the event if the play has not reached it yet.
# Rendered from pipeline {pipeline} by `stagectl pipeline render`: change the definition, not this.
#
# The task id is workflow-templates/task-id.jq's (copied below as the dependency's transform):
# a `task-<id>` label, else the head branch `task-<id>[-…]` or `feature/task-<id>[-…]`; a pull
# request with two task labels names none. Events without a task id never trigger; nor do
# deliveries without GitHub's SHA-256 signature. Every pattern is anchored.
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: {name}
spec:
  template:
    serviceAccountName: play-sensor
  dependencies:
    - name: {dependency}
      eventSourceName: github
      eventName: play
      # workflow-templates/task-id.jq, copied by `stagectl pipeline render`.
      transform:
        jq: |-
",
        what = description(awaited),
        stage = stage.name(),
        pipeline = pipeline.name(),
    );
    for line in TASK_ID_RULE.trim_end().lines() {
        let _ = writeln!(w, "          {line}");
    }
    let _ = write!(
        w,
        "      filters:
        data:
          # The EventSource checks X-Hub-Signature-256 when present, else the legacy SHA-1
          # X-Hub-Signature: only a delivery with the SHA-256 one goes on.
          - path: headers.X-Hub-Signature-256.0
            type: string
            value: [\"^sha256=[0-9a-f]{{64}}$\"]
"
    );
    for filter in awaited.sensor_filters() {
        let _ = write!(
            w,
            "          - path: {}\n            type: {}\n            value: [{}]\n",
            filter.path,
            filter.kind,
            quoted(&filter.pattern)
        );
    }
    let _ = write!(
        w,
        "          - path: taskId
            type: string
            value: [\"^[0-9A-Za-z]+$\"]
  triggers:
    - template:
        name: stage-resume
        k8s:
          operation: create
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata:
                # Replaced by one derived from the delivery id: a redelivered webhook is
                # refused as AlreadyExists.
                name: stage-resume-delivery
                labels:
                  app.kubernetes.io/part-of: stagectl
                  stagectl.dev/stage-resume: {label}
              spec:
                workflowTemplateRef:
                  name: stage-resume
                arguments:
                  parameters:
                    - name: stage
                      value: {stage}
",
        label = quoted(stage.name()),
        stage = plain(stage.name()),
    );
    let facts = awaited.sensor_facts();
    let parameters = RESUME_PARAMETERS[1..]
        .iter()
        .copied()
        .chain(facts.iter().map(|fact| fact.flag));
    for parameter in parameters {
        let _ = write!(
            w,
            "                    - name: {parameter}\n                      value: \"\"\n"
        );
    }
    let _ = writeln!(w, "          parameters:");
    let sources = [
        "dataTemplate: 'stage-resume-{{ index .Input.body \"X-GitHub-Delivery\" | lower }}'"
            .to_string(),
        "dataKey: taskId".to_string(),
        "dataKey: body.repository.full_name".to_string(),
        "dataTemplate: '{{ index .Input.body \"X-GitHub-Delivery\" }}'".to_string(),
        "dataTemplate: '{{ index .Input.body \"X-GitHub-Event\" }}'".to_string(),
    ]
    .into_iter()
    .chain(facts.iter().map(|fact| {
        // A field the payload lacks is passed as empty, which resume reads as absent.
        format!("dataKey: {}\n                value: \"\"", fact.path)
    }));
    for (index, source) in sources.enumerate() {
        let dest = match index {
            0 => "metadata.name".to_string(),
            i => format!("spec.arguments.parameters.{i}.value"),
        };
        let _ = write!(
            w,
            "            - src:\n                dependencyName: {dependency}\n                {source}\n              dest: {dest}\n"
        );
    }
    // Argo Events retries a trigger only when it waits for it before acking the event
    // (atLeastOnce): otherwise the create runs on its own and one the API server refuses is
    // never tried again, whatever retryStrategy says.
    let _ = write!(
        w,
        "      # Tried again 2 s and 6 s after a refused create (the API server restarting), the event
      # acked only after; a redelivery's create is refused as AlreadyExists each time.
      retryStrategy:
        steps: 3
        duration: 2s
        factor: 2
      atLeastOnce: true
"
    );
    out
}

/// What a Sensor's name and file add to the wait's for an event that does not release it.
fn sensor_suffix(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Releases => "",
        Verdict::Fails => "-failed",
        Verdict::SendsBack => "-sent-back",
    }
}

/// `<pipeline>-<stage>`, without the stage's `waiting-` prefix: play-ready-for-qa.
pub fn sensor_name(pipeline: &Pipeline, stage: &Stage) -> String {
    let stage = stage.name();
    let short = stage.strip_prefix("waiting-").unwrap_or(stage);
    format!(
        "{}-{}",
        pipeline.name(),
        short.to_ascii_lowercase().replace(['_', '.'], "-")
    )
}

fn dependency_name(awaited: &Awaited) -> String {
    match awaited {
        Awaited::PullRequestOpened => "pr-opened".into(),
        Awaited::PullRequestPushed => "pr-pushed".into(),
        Awaited::LabelAdded { label } if is_plain(label) => format!("{label}-labeled"),
        Awaited::LabelAdded { .. } => "label-added".into(),
        Awaited::ReviewApproved => "review-approved".into(),
        Awaited::ReviewChangesRequested => "changes-requested".into(),
        Awaited::PullRequestMerged => "pr-merged".into(),
        Awaited::CheckSuiteCompleted { conclusion, .. } => {
            format!("check-suite-{}", conclusion.as_str().replace('_', "-"))
        }
        Awaited::WorkflowRunCompleted { conclusion, .. } => {
            format!("workflow-run-{}", conclusion.as_str().replace('_', "-"))
        }
    }
}

/// What the Sensor waits for, as its first comment line says it.
fn description(awaited: &Awaited) -> String {
    match awaited {
        Awaited::PullRequestOpened => "A pull request of a task was opened".into(),
        Awaited::PullRequestPushed => {
            "A task's pull request was opened, reopened or pushed to".into()
        }
        Awaited::ReviewChangesRequested => {
            "A review requesting changes to a task's pull request was submitted".into()
        }
        Awaited::LabelAdded { label } => {
            format!("The {label} label was added to a task's pull request")
        }
        Awaited::ReviewApproved => "A review approving a task's pull request was submitted".into(),
        Awaited::PullRequestMerged => "A task's pull request was merged".into(),
        other => format!("On a task's pull request: {other}"),
    }
}

/// Lower-case letters, digits and '-', as YAML reads back unchanged and unquoted.
fn is_plain(text: &str) -> bool {
    !text.is_empty()
        && text.as_bytes()[0].is_ascii_lowercase()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !matches!(
            text,
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        )
}

/// `text` as YAML reads it back as the same string: bare when that is safe, else quoted.
fn plain(text: &str) -> String {
    if is_plain(text) {
        text.to_string()
    } else {
        quoted(text)
    }
}

/// A double-quoted YAML scalar: JSON's string syntax is YAML's.
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Names that YAML, Argo and CEL each read in their own way: a stage named like a boolean,
    /// one with a `.` and `_`, a label with both kinds of quotes.
    const ODD: &str = "apiVersion: stagectl.dev/v1alpha1
kind: Pipeline
metadata: {name: odd}
spec:
  stages:
    - name: start
    - name: \"true\"
      releasedBy: {event: label-added, label: \"QA: \\\"go\\\" don't (v1.2)\"}
    - name: Waiting_CI.2
      releasedBy: {event: workflow-run-completed, conclusion: timed_out, workflow: \"CI #1\"}
    - name: end
";

    #[test]
    fn the_sensors_of_any_definition_are_yaml_whatever_the_names() {
        let pipeline = crate::pipeline::parse(ODD, "odd.yaml").unwrap();
        let manifests = manifests(&pipeline);
        // Policy, EventSource, CronWorkflow, two Sensors, three shared files, the kustomization.
        assert_eq!(manifests.len(), 9);
        let kustomization: serde_yaml::Value = serde_yaml::from_str(&manifests[8].text).unwrap();
        let resources = kustomization["resources"].as_sequence().unwrap();
        for file in [
            "play-workflow-template.yaml",
            "sensor-true.yaml",
            "sensor-Waiting_CI.2.yaml",
        ] {
            assert!(resources.iter().any(|r| r == file), "{file}: {resources:?}");
        }
        let policy: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&manifests[0].text)
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
            .collect();
        let stages = policy[0]["spec"]["variables"][0]["expression"]
            .as_str()
            .unwrap();
        assert!(
            stages.ends_with(": ['start', 'true', 'Waiting_CI.2', 'end']"),
            "{stages}"
        );
        assert_eq!(
            policy[1]["spec"]["policyName"],
            "stagectl-stage-machine-odd"
        );
        let source: serde_yaml::Value = serde_yaml::from_str(&manifests[1].text).unwrap();
        assert_eq!(
            source["spec"]["github"]["play"]["events"],
            serde_yaml::from_str::<serde_yaml::Value>("[pull_request, workflow_run]").unwrap()
        );
        for manifest in &manifests[3..5] {
            let sensor: serde_yaml::Value = serde_yaml::from_str(&manifest.text).unwrap();
            let resource = &sensor["spec"]["triggers"][0]["template"]["k8s"]["source"]["resource"];
            let parameters = resource["spec"]["arguments"]["parameters"]
                .as_sequence()
                .unwrap();
            assert!(parameters[0]["value"].is_string(), "{}", manifest.text);
            let stage = parameters[0]["value"].as_str().unwrap();
            assert_eq!(manifest.file, format!("sensor-{stage}.yaml"));
            let filters = sensor["spec"]["dependencies"][0]["filters"]["data"]
                .as_sequence()
                .unwrap();
            let patterns: Vec<&str> = filters
                .iter()
                .flat_map(|f| f["value"].as_sequence().unwrap())
                .map(|v| v.as_str().unwrap())
                .collect();
            assert!(
                patterns.contains(&r#"^QA: "go" don't \(v1\.2\)$"#)
                    || patterns.contains(&"^CI #1$"),
                "{patterns:?}"
            );
        }
        assert_eq!(
            sensor_name(&pipeline, &pipeline.stage("Waiting_CI.2")),
            "odd-waiting-ci-2"
        );
    }

    /// Each waiting stage has both gauges, each reading a parameter Argo accepts the name of,
    /// read from the file reconcile writes for that stage; and the run gets the definition back.
    #[test]
    fn the_reconcile_cronworkflow_counts_every_wait_of_any_definition() {
        let pipeline = crate::pipeline::parse(ODD, "odd.yaml").unwrap();
        let cron: serde_yaml::Value =
            serde_yaml::from_str(&reconcile_cron(&pipeline).text).unwrap();
        let template = &cron["spec"]["workflowSpec"]["templates"][0];
        let files: BTreeMap<String, String> = template["outputs"]["parameters"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| {
                let name = p["name"].as_str().unwrap().to_string();
                let path = p["valueFrom"]["path"].as_str().unwrap();
                (
                    name,
                    path.strip_prefix("/tmp/outputs/").unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(files["recovered"], outputs::RECOVERED);
        let gauges: Vec<(String, String, String)> = template["metrics"]["prometheus"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter(|metric| metric["gauge"].is_mapping())
            .map(|metric| {
                let value = metric["gauge"]["value"].as_str().unwrap();
                let parameter = value
                    .strip_prefix("{{outputs.parameters.")
                    .and_then(|v| v.strip_suffix("}}"))
                    .unwrap();
                assert!(
                    parameter
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                    "{parameter}"
                );
                (
                    metric["name"].as_str().unwrap().to_string(),
                    metric["labels"][0]["value"].as_str().unwrap().to_string(),
                    files[parameter].clone(),
                )
            })
            .collect();
        let mut expected = Vec::new();
        for (metric, file) in [
            (
                "stagectl_plays_waiting",
                outputs::waiting as fn(&Stage) -> String,
            ),
            ("stagectl_oldest_wait_seconds", outputs::oldest_wait_seconds),
        ] {
            for stage in pipeline.waiting_stages() {
                expected.push((metric.to_string(), stage.name().to_string(), file(&stage)));
            }
        }
        assert_eq!(gauges, expected);
        assert_eq!(files.len(), 1 + expected.len());

        let args = template["container"]["args"].as_sequence().unwrap();
        let given = args
            .iter()
            .find_map(|arg| arg.as_str()?.strip_prefix("--pipeline="))
            .unwrap();
        let again = crate::pipeline::parse(given, "the CronWorkflow's --pipeline").unwrap();
        assert_eq!(
            crate::pipeline::to_json(&again),
            crate::pipeline::to_json(&pipeline)
        );
    }
}
