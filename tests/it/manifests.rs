//! What a platform team applies: every manifest under workflow-templates/ and examples/ is
//! accepted by the real API server with Argo's full CRDs (a server-side apply, dry run, strictly
//! validated).

use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::json;

use kube::ResourceExt;

use crate::harness::{TestNamespace, api_status, repo_path};

fn resource_of(object: &DynamicObject) -> ApiResource {
    let types = object.types.as_ref().expect("apiVersion and kind");
    let (group, version) = types
        .api_version
        .split_once('/')
        .unwrap_or(("", &types.api_version));
    let plural = match types.kind.as_str() {
        "Workflow" => "workflows",
        "WorkflowTemplate" => "workflowtemplates",
        "CronWorkflow" => "cronworkflows",
        "Sensor" => "sensors",
        "EventSource" => "eventsources",
        "ServiceAccount" => "serviceaccounts",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "PrometheusRule" => "prometheusrules",
        "ConfigMap" => "configmaps",
        "ValidatingAdmissionPolicy" => "validatingadmissionpolicies",
        "ValidatingAdmissionPolicyBinding" => "validatingadmissionpolicybindings",
        other => panic!("no plural known for {other}"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, &types.kind), plural)
}

fn is_cluster_scoped(object: &DynamicObject) -> bool {
    object
        .types
        .as_ref()
        .is_some_and(|t| t.kind.starts_with("ValidatingAdmissionPolicy"))
}

fn documents(dir: &str) -> Vec<(String, DynamicObject)> {
    let mut files: Vec<_> = std::fs::read_dir(repo_path(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let object: DynamicObject = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            // kustomize's own files are its input, and the pipeline definition stagectl's: not
            // objects of the cluster.
            if object
                .types
                .as_ref()
                .is_none_or(|t| t.kind == "Kustomization" || t.kind == "Pipeline")
            {
                continue;
            }
            documents.push((file.display().to_string(), object));
        }
    }
    documents
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn every_manifest_is_accepted_by_the_server() {
    let ns = TestNamespace::new("manifests").await;
    // Strict: a field the schema does not know is refused, not dropped with a warning. This is
    // where every shipped manifest meets that check (tests/events/start applies the Argo Events
    // ones without kubectl's own, which downloads the server's OpenAPI on every start).
    let dry_run = PatchParams::apply("stagectl-tests")
        .dry_run()
        .validation_strict();
    let mut checked = 0;
    for dir in [
        "workflow-templates",
        "examples",
        "examples/monitoring",
        "examples/pipelines/gated",
    ] {
        for (file, mut object) in documents(dir) {
            if let Some(subjects) = object.data.get_mut("subjects") {
                for subject in subjects.as_array_mut().unwrap() {
                    subject["namespace"] = json!(ns.name);
                }
            }
            // An apply names its object: a play's manifest that asks the server for a name
            // gets one here.
            if let Some(prefix) = object.metadata.generate_name.take() {
                object.metadata.name = Some(format!("{prefix}dry-run"));
            }
            let resource = resource_of(&object);
            let api: Api<DynamicObject> = if is_cluster_scoped(&object) {
                // Named for this test: the real ones may exist already, and a dry run of a
                // creation checks everything but that.
                object.metadata.name = Some(format!("{}.{}", object.name_any(), ns.name));
                Api::all_with(ns.client.clone(), &resource)
            } else {
                Api::namespaced_with(ns.client.clone(), &ns.name, &resource)
            };
            api.patch(&object.name_any(), &dry_run, &Patch::Apply(&object))
                .await
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            checked += 1;
        }
    }
    assert!(checked >= 17, "{checked} manifests");
}

/// The sensors name the Workflow they create after the webhook's delivery id: GitHub's
/// redelivery of the same webhook is refused by the server instead of resuming twice.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn a_redelivered_webhook_is_refused_as_already_existing() {
    let ns = TestNamespace::new("redelivery").await;
    let (_, sensor) = documents("workflow-templates")
        .into_iter()
        .find(|(file, _)| file.ends_with("sensor-waiting-pr-created.yaml"))
        .unwrap();
    let mut workflow: DynamicObject = serde_json::from_value(
        sensor.data["spec"]["triggers"][0]["template"]["k8s"]["source"]["resource"].clone(),
    )
    .unwrap();
    workflow.metadata.name = Some("stage-resume-72d3162e-cc78-11e3-81ab-4c9367dc0958".into());
    ns.workflows()
        .create(&PostParams::default(), &workflow)
        .await
        .unwrap();
    let again = ns
        .workflows()
        .create(&PostParams::default(), &workflow)
        .await;
    assert_eq!(api_status(again), 409);
}

/// What the README tells a platform team to run: a copy of workflow-templates/ with its
/// namespace and image changed, applied to the real server (server-side dry run).
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn kubectl_apply_k_installs_the_pipeline_with_namespace_and_image_overridden() {
    let ns = TestNamespace::new("apply-k").await;
    let copy = ns.scratch("workflow-templates");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(repo_path("workflow-templates")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
    }
    let kustomization = std::fs::read_to_string(copy.join("kustomization.yaml")).unwrap();
    let kustomization = kustomization
        .replace("namespace: argo", &format!("namespace: {}", ns.name))
        .replace(
            "newTag: latest",
            "newName: registry.example.test/stagectl\n    newTag: v9.9.9",
        );
    std::fs::write(copy.join("kustomization.yaml"), kustomization).unwrap();
    let output = tokio::process::Command::new(repo_path("tests/controlplane/bin/kubectl"))
        .env("KUBECONFIG", &ns.kubeconfig)
        .arg("apply")
        .arg("-k")
        .arg(&copy)
        .args(["--dry-run=server", "-o", "yaml"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let objects: Vec<serde_yaml::Value> = serde_yaml::from_str::<serde_yaml::Value>(&stdout)
        .ok()
        .and_then(|list| list["items"].as_sequence().cloned())
        .expect("a List of objects");
    assert_eq!(
        objects.len(),
        documents("workflow-templates").len(),
        "every object of workflow-templates/"
    );
    for object in &objects {
        let kind = object["kind"].as_str().unwrap();
        if kind.starts_with("ValidatingAdmissionPolicy") {
            assert!(
                object["metadata"]["namespace"].is_null(),
                "{kind} is cluster-wide"
            );
        } else {
            assert_eq!(
                object["metadata"]["namespace"].as_str(),
                Some(ns.name.as_str())
            );
        }
    }
    // The stage-machine policy binds to the namespace installed into, named after it.
    let binding = objects
        .iter()
        .find(|o| o["kind"] == "ValidatingAdmissionPolicyBinding")
        .expect("the policy's binding");
    assert_eq!(
        binding["metadata"]["name"].as_str(),
        Some(format!("stagectl-stage-machine-play.{}", ns.name).as_str())
    );
    assert_eq!(
        binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]
            ["kubernetes.io/metadata.name"]
            .as_str(),
        Some(ns.name.as_str())
    );
    assert_eq!(
        stdout
            .matches("image: registry.example.test/stagectl:v9.9.9")
            .count(),
        4,
        "the two stagectl steps of the play, the stage-resume step and the reconcile CronWorkflow's"
    );
    assert!(
        !stdout.contains("ghcr.io/stagectl/stagectl"),
        "every stagectl image is overridden"
    );
}

/// The play's shape, read from the template itself: agent → update → wait, three times, then
/// complete; each wait skippable by its update's output; the exit handler; the mutex; and the
/// empty latches stagectl's `set` tests.
#[test]
fn the_play_template_has_the_shape_stagectl_relies_on() {
    let (_, play) = documents("workflow-templates")
        .into_iter()
        .find(|(_, o)| o.metadata.name.as_deref() == Some("play"))
        .expect("the play WorkflowTemplate");
    let spec = &play.data["spec"];
    let templates = spec["templates"].as_array().unwrap();
    let template = |name: &str| {
        templates
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no template {name}"))
    };
    let tasks_of = |name: &str| template(name)["dag"]["tasks"].as_array().unwrap().clone();
    let entry = tasks_of(spec["entrypoint"].as_str().unwrap());
    // The entrypoint starts the play and its first pass; each pass is the `pass` template.
    let tasks = tasks_of("pass");
    let task = |name: &str| {
        tasks
            .iter()
            .chain(&entry)
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no task {name}"))
    };
    let argument = |t: &serde_json::Value, name: &str| {
        t["arguments"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["value"].as_str().unwrap().to_string())
    };
    let pass_of = |t: &serde_json::Value| argument(t, "pass");
    let stage_of = |t: &serde_json::Value| argument(t, "stage");
    let chain = [
        (
            "rex",
            "update-to-waiting-pr",
            "wait-pr-created",
            "waiting-pr-created",
        ),
        (
            "cleo",
            "update-to-waiting-qa",
            "wait-ready-for-qa",
            "waiting-ready-for-qa",
        ),
        (
            "tess",
            "update-to-waiting-approval",
            "wait-pr-approved",
            "waiting-pr-approved",
        ),
    ];
    // The start writes the play's labels where Argo did not, before Rex can cause an event.
    assert_eq!(task("start")["template"], "update-workflow-stage");
    assert_eq!(stage_of(task("start")).as_deref(), Some("pending"));
    assert!(task("start")["depends"].is_null());
    assert_eq!(
        entry.len(),
        2,
        "the entrypoint starts the play and its first pass"
    );
    assert_eq!(task("pass")["depends"], "start");
    assert_eq!(task("pass")["template"], "pass");
    assert_eq!(pass_of(task("pass")).as_deref(), Some("1"));
    let mut previous_wait: Option<&str> = None;
    for (agent, update, wait, stage) in chain {
        assert_eq!(task(agent)["template"], "agent");
        if let Some(previous) = previous_wait {
            assert_eq!(
                task(agent)["depends"],
                previous,
                "{agent} follows the previous wait"
            );
        }
        assert_eq!(task(update)["depends"], agent, "{update} follows {agent}");
        assert_eq!(task(update)["template"], "update-workflow-stage");
        assert_eq!(stage_of(task(update)).as_deref(), Some(stage));
        assert_eq!(task(wait)["depends"], update, "{wait} follows {update}");
        assert_eq!(task(wait)["template"], "wait-for-event");
        assert_eq!(
            stage_of(task(wait)).as_deref(),
            Some(stage),
            "resume finds it by its stage"
        );
        assert_eq!(
            task(wait)["when"],
            format!("{{{{tasks.{update}.outputs.parameters.skip-wait}}}} != true"),
            "{wait} is skipped when its event came early"
        );
        for step in [agent, update, wait] {
            assert_eq!(
                pass_of(task(step)).as_deref(),
                Some("{{inputs.parameters.pass}}"),
                "{step} knows its pass"
            );
        }
        previous_wait = Some(wait);
    }
    assert!(task("rex")["depends"].is_null(), "a pass begins with Rex");
    assert_eq!(task("complete")["depends"], "wait-pr-approved");
    assert_eq!(stage_of(task("complete")).as_deref(), Some("completed"));
    // A pass sent back ends with `complete` answering pass-over and the pass the play is in,
    // and the next pass starts from it: the only loop, by recursion.
    let next = task("next-pass");
    assert_eq!(next["template"], "pass");
    assert_eq!(next["depends"], "complete");
    assert_eq!(
        next["when"],
        "{{tasks.complete.outputs.parameters.pass}} != {{inputs.parameters.pass}}"
    );
    assert_eq!(
        pass_of(next).as_deref(),
        Some("{{tasks.complete.outputs.parameters.pass}}")
    );
    assert_eq!(tasks.len(), 11, "nothing else in a pass");

    let update = template("update-workflow-stage");
    let args: Vec<&str> = update["container"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..2], ["set", "{{inputs.parameters.stage}}"]);
    assert!(args.contains(&"--skip-wait-file=/tmp/skip-wait"));
    assert!(args.contains(&"--pass={{inputs.parameters.pass}}"));
    assert!(args.contains(&"--pass-file=/tmp/pass"));
    assert_eq!(
        update["outputs"]["parameters"][1]["valueFrom"]["path"],
        "/tmp/pass"
    );
    assert_eq!(
        update["outputs"]["parameters"][0]["valueFrom"]["path"],
        "/tmp/skip-wait"
    );
    assert!(template("wait-for-event")["suspend"].is_object());
    assert_eq!(
        template("wait-for-event")["inputs"]["parameters"][0]["name"],
        stagectl_core::argo::STAGE_PARAMETER
    );
    assert_eq!(
        template("wait-for-event")["inputs"]["parameters"][1]["name"],
        stagectl_core::argo::PASS_PARAMETER
    );

    let exit_handler = template(spec["onExit"].as_str().expect("an exit handler"));
    let mark_failed = template(exit_handler["steps"][0][0]["template"].as_str().unwrap());
    assert_eq!(mark_failed["container"]["args"][0], "set");
    assert_eq!(mark_failed["container"]["args"][1], "failed");
    assert!(spec["synchronization"]["mutexes"][0]["name"].is_string());
    assert!(
        spec["synchronization"].get("mutex").is_none(),
        "v4 has no singular mutex"
    );

    let metadata = &spec["workflowMetadata"];
    assert_eq!(metadata["labels"]["workflow-type"], "play-orchestration");
    assert_eq!(metadata["labels"]["current-stage"], "pending");
    let pipeline = stagectl_core::stage::Pipeline::default();
    for (key, value) in stagectl_core::latch::empty_latches(&pipeline) {
        assert_eq!(
            metadata["annotations"][&key], value,
            "{key} is created empty"
        );
    }
    assert_eq!(
        metadata["annotations"][stagectl_core::pass::PASS_ANNOTATION],
        "1",
        "a play is created in its first pass"
    );
}

/// Each account of rbac.yaml, with a real token: it can do what its steps do, and is refused
/// what they do not need.
#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn every_account_can_do_its_steps_work_and_nothing_more() {
    use crate::harness::{apply_rbac, service_account_kubeconfig};
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::api::{DeleteParams, Patch, PatchParams};

    let ns = TestNamespace::new("rbac-accounts").await;
    apply_rbac(&ns, false).await;
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "github-webhook-secret"}})).unwrap();
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let config_map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap();
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &config_map)
        .await
        .unwrap();

    for account in [
        "play",
        "stagectl-stage",
        "stage-resume",
        "stagectl",
        "stagectl-reconcile",
        "play-sensor",
    ] {
        let workflow = ns.create_play().await;
        let kubeconfig = service_account_kubeconfig(&ns, account).await;
        let client =
            kube::Client::try_from(crate::harness::config_from_kubeconfig(&kubeconfig).await)
                .unwrap();
        let workflows: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            &ns.name,
            &crate::harness::workflow_resource(),
        );
        // The agents' account and the sensors' read and write no play.
        let may_change_stages = !matches!(account, "play" | "play-sensor");

        // What the template's steps run as this account.
        let set = ns
            .stagectl_as(
                &kubeconfig,
                &["set", "waiting-pr-created", "--workflow", &workflow],
            )
            .await;
        assert_eq!(
            set.code,
            if may_change_stages { 0 } else { 5 },
            "{account}: {}",
            set.stderr
        );
        let resume = ns
            .stagectl_as(
                &kubeconfig,
                &[
                    "resume",
                    "--stage",
                    "waiting-ready-for-qa",
                    "--task-id",
                    "42",
                    "-o",
                    "json",
                ],
            )
            .await;
        assert_eq!(
            resume.code,
            if may_change_stages { 0 } else { 5 },
            "{account}: {}",
            resume.stderr
        );
        let get = ns.stagectl_as(&kubeconfig, &["get", "-o", "name"]).await;
        assert_eq!(
            get.code,
            if may_change_stages { 0 } else { 5 },
            "{account}: {}",
            get.stderr
        );

        // What no step needs.
        assert_eq!(
            api_status(workflows.delete(&workflow, &DeleteParams::default()).await),
            403,
            "{account} deletes workflows"
        );
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
        assert_eq!(
            api_status(secrets.get("github-webhook-secret").await),
            403,
            "{account} reads secrets"
        );
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
        let patch = Patch::Merge(json!({"data": {"x": "y"}}));
        assert_eq!(
            api_status(
                config_maps
                    .patch("other", &PatchParams::default(), &patch)
                    .await
            ),
            403,
            "{account} patches other kinds"
        );
        // The sensor's one right: creating (stage-resume) workflows.
        let mut created = crate::harness::load_manifest("examples/play-workflow.yaml");
        created.metadata.generate_name = Some(format!("{account}-"));
        let create = workflows.create(&PostParams::default(), &created).await;
        match account {
            "play-sensor" => assert!(create.is_ok(), "the sensor creates workflows"),
            _ => assert_eq!(api_status(create), 403, "{account} creates workflows"),
        }
        // Done with this account's play: another task's resume must not see it.
        ns.workflows()
            .delete(&workflow, &DeleteParams::default())
            .await
            .unwrap();
        if account == "play-sensor" {
            let name = ns
                .workflows()
                .list(&Default::default())
                .await
                .unwrap()
                .items[0]
                .metadata
                .name
                .clone()
                .unwrap();
            ns.workflows()
                .delete(&name, &DeleteParams::default())
                .await
                .unwrap();
        }
    }
}

/// Every metric the alerts and the dashboard query is one the templates export (with the
/// controller's `argo_workflows_` prefix).
#[test]
fn alerts_and_dashboard_query_metrics_the_templates_export() {
    let mut exported = std::collections::BTreeSet::new();
    for (_, object) in documents("workflow-templates") {
        let spec = &object.data["spec"];
        // A CronWorkflow holds its templates one level down.
        let templates = spec["templates"]
            .as_array()
            .or(spec["workflowSpec"]["templates"].as_array());
        for template in templates.into_iter().flatten() {
            for metric in template["metrics"]["prometheus"]
                .as_array()
                .into_iter()
                .flatten()
            {
                exported.insert(format!(
                    "argo_workflows_{}",
                    metric["name"].as_str().unwrap()
                ));
            }
        }
    }
    assert_eq!(
        exported,
        [
            "argo_workflows_stagectl_oldest_wait_seconds",
            "argo_workflows_stagectl_plays_failed_total",
            "argo_workflows_stagectl_plays_waiting",
            "argo_workflows_stagectl_reconcile_recovered_total",
            "argo_workflows_stagectl_reconcile_runs_total",
            "argo_workflows_stagectl_resume_steps_total",
            "argo_workflows_stagectl_stage_transition_duration_seconds",
            "argo_workflows_stagectl_stage_transitions_total",
            "argo_workflows_stagectl_waits_total",
        ]
        .map(String::from)
        .into()
    );
    let mut queried = 0;
    for file in [
        "examples/monitoring/prometheus-rule.yaml",
        "examples/monitoring/grafana-dashboard.json",
    ] {
        let text = std::fs::read_to_string(repo_path(file)).unwrap();
        for (at, _) in text.match_indices("argo_workflows_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let name = name.strip_suffix("_bucket").unwrap_or(&name);
            if name == "argo_workflows_" {
                continue; // the prefix itself, named in prose
            }
            assert!(
                exported.contains(name),
                "{file} queries {name}, which no template exports"
            );
            queried += 1;
        }
    }
    assert!(queried >= 7, "{queried}");
}

/// Debian's promtool, which `make test` unpacks (STAGECTL_PROMTOOL), else one on PATH.
fn promtool(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let program = std::env::var_os("STAGECTL_PROMTOOL").unwrap_or_else(|| "promtool".into());
    std::process::Command::new(&program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (make test provides it)", program.display()))
}

/// Every PrometheusRule passes `promtool check rules`, and the alerts fire, stay quiet and
/// resolve as tests/monitoring/prometheus-rule.test.yaml says (`promtool test rules`).
#[test]
#[ignore = "needs promtool from Debian's prometheus package: make test"]
fn the_alert_rules_are_valid_and_fire_when_their_tests_say() {
    let dir = std::env::temp_dir().join(format!("stagectl-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rule_files = 0;
    for (file, object) in documents("examples/monitoring") {
        if object.types.as_ref().unwrap().kind != "PrometheusRule" {
            continue;
        }
        // promtool reads a Prometheus rule file, which is what the Operator's spec holds.
        let name = std::path::Path::new(&file).file_stem().unwrap().to_owned();
        let rules = dir.join(name).with_extension("rules.yaml");
        std::fs::write(&rules, serde_yaml::to_string(&object.data["spec"]).unwrap()).unwrap();
        let checked = promtool(&["check".as_ref(), "rules".as_ref(), rules.as_os_str()]);
        assert!(checked.status.success(), "{file}: {checked:?}");
        rule_files += 1;
    }
    assert_eq!(rule_files, 1);

    let test = dir.join("prometheus-rule.test.yaml");
    std::fs::copy(
        repo_path("tests/monitoring/prometheus-rule.test.yaml"),
        &test,
    )
    .unwrap();
    let tested = promtool(&["test".as_ref(), "rules".as_ref(), test.as_os_str()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        tested.status.success(),
        "{}{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );
}

/// The Argo releases the control plane's CRDs come from (tests/controlplane/crds.pins) are the
/// ones the Go modules build and validate with: each line's (tests/argo/<line>/go.mod, the
/// controller and `make argo-lint`), Argo Events' (tests/events/go.mod); and every line the
/// Makefile runs has its row and its module.
#[test]
fn the_crds_are_the_releases_the_go_modules_pin() {
    let read = |path: &str| std::fs::read_to_string(repo_path(path)).unwrap();
    let requires = |go_mod: &str, module: &str| -> Option<String> {
        read(go_mod).lines().find_map(|line| {
            let (path, version) = line.trim().split_once(' ')?;
            (path == module).then(|| version.split_whitespace().next().unwrap().to_string())
        })
    };
    let mut lines = Vec::new();
    let mut events = 0;
    for row in read("tests/controlplane/crds.pins").lines() {
        let fields: Vec<&str> = row.split_whitespace().collect();
        if fields.is_empty() || fields[0].starts_with('#') {
            continue;
        }
        let (module, version) = fields[0].split_once('@').unwrap();
        let go_mod = if module.starts_with("github.com/argoproj/argo-workflows/") {
            let line = fields.get(2).unwrap_or_else(|| panic!("{row}: no line"));
            lines.push(line.to_string());
            format!("tests/argo/{line}/go.mod")
        } else if module == "github.com/argoproj/argo-events" {
            events += 1;
            "tests/events/go.mod".to_string()
        } else {
            continue;
        };
        assert_eq!(
            requires(&go_mod, module).as_deref(),
            Some(version),
            "crds.pins has {module}@{version}; {go_mod} requires another"
        );
    }
    assert_eq!(events, 1);
    lines.sort();
    let makefile = read("Makefile");
    let make_lines: Vec<String> = makefile
        .lines()
        .find_map(|line| line.strip_prefix("ARGO_LINES := "))
        .expect("ARGO_LINES in the Makefile")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(lines, make_lines, "crds.pins' lines and the Makefile's");
    let mut modules: Vec<String> = std::fs::read_dir(repo_path("tests/argo"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|dir| dir.join("go.mod").exists())
        .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    modules.sort();
    assert_eq!(lines, modules, "crds.pins' lines and tests/argo's modules");
}
