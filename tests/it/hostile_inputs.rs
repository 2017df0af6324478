//! Bad and hostile input: each gets its documented exit code and one clear error line, and
//! nothing is written.

use crate::harness::{OwnControlPlane, TestNamespace};

struct Case {
    args: Vec<String>,
    code: i32,
    says: &'static str,
}

fn case(args: &[&str], code: i32, says: &'static str) -> Case {
    Case {
        args: args.iter().map(|a| a.to_string()).collect(),
        code,
        says,
    }
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn hostile_and_broken_inputs_are_refused_without_writing() {
    let ns = TestNamespace::new("hostile").await;
    let workflow = ns.create_play().await;
    let created_version = ns.meta(&workflow).await.resource_version;
    let w = workflow.as_str();
    let long = "x".repeat(300);
    let garbage = ns.scratch("garbage.kubeconfig");
    std::fs::write(&garbage, "clusters: [this is not: a kubeconfig").unwrap();
    let garbage = garbage.to_str().unwrap();

    let cases = [
        case(&["set", "bogus", "--workflow", w], 2, "unknown stage"),
        case(
            &[
                "set",
                "waiting-pr-created,current-stage=completed",
                "--workflow",
                w,
            ],
            2,
            "unknown stage",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                "../../etc/passwd",
            ],
            2,
            "invalid workflow name",
        ),
        case(
            &["set", "waiting-pr-created", "--workflow", "Play-42"],
            2,
            "invalid workflow name",
        ),
        case(
            &["set", "waiting-pr-created", "--workflow", &long],
            2,
            "invalid workflow name",
        ),
        case(
            &["set", "waiting-pr-created", "--workflow", ""],
            2,
            "invalid workflow name",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--task-id",
                "5,current-stage=x",
            ],
            2,
            "invalid task id",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--task-id",
                "5 in (6)",
            ],
            2,
            "invalid task id",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--task-id",
                "tâche-42",
            ],
            2,
            "invalid task id",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--task-id",
                &"7".repeat(64),
            ],
            2,
            "invalid task id",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--task-id",
                "$(touch /tmp/pwned)",
            ],
            2,
            "invalid task id",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--repository",
                "acme",
            ],
            2,
            "invalid repository",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--repository",
                "acme/w,task-id=1",
            ],
            2,
            "invalid repository",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--repository",
                "acmé/widgets",
            ],
            2,
            "invalid repository",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "-n",
                "Bad_Namespace",
            ],
            2,
            "invalid namespace",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--stages",
                "a,a",
            ],
            2,
            "appears twice",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--timeout",
                "soon",
            ],
            2,
            "not a duration",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--no-such-flag",
            ],
            2,
            "unexpected argument",
        ),
        case(&["set", "waiting-pr-created"], 2, "--workflow"),
        case(&["get", "-o", "xml"], 2, "invalid value"),
        case(&["get", "--chunk-size", "0"], 2, "invalid value"),
        // Durations past any clock's arithmetic are bad input, not an overflow.
        case(
            &["get", "--timeout", "9223372036854775807s"],
            2,
            "longer than a year",
        ),
        case(
            &["get", "--waiting-longer-than", "9223372036854775807s"],
            2,
            "longer than a year",
        ),
        case(
            &["verify", "pending", "--workflow", w, "--wait=8785h"],
            2,
            "longer than a year",
        ),
        case(&["get", "-l", "a in ("], 2, "rejected the request"),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--kubeconfig",
                garbage,
            ],
            2,
            "cannot read kubeconfig",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--kubeconfig",
                "/nonexistent/kubeconfig",
            ],
            2,
            "cannot read kubeconfig",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--context",
                "no-such-context",
            ],
            2,
            "no-such-context",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                "no-such-workflow",
            ],
            4,
            "not found",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "-n",
                "no-such-namespace",
            ],
            4,
            "not found",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--task-id",
                "7",
            ],
            3,
            "play of task 42, not 7",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--repository",
                "other/repo",
            ],
            3,
            "not other/repo",
        ),
        case(
            &["set", "waiting-pr-created", "--workflow", w, "--pass", "0"],
            2,
            "--pass",
        ),
        case(
            &[
                "set",
                "waiting-pr-created",
                "--workflow",
                w,
                "--pass",
                "two",
            ],
            2,
            "--pass",
        ),
        // A step of a pass the play has not reached.
        case(
            &["set", "waiting-pr-created", "--workflow", w, "--pass", "2"],
            3,
            "the play is in pass 1, not 2",
        ),
        case(
            &[
                "resume",
                "--stage",
                "waiting-pr-approved",
                "--task-id",
                "42",
                "--delivery-id",
                "d-hostile",
                "--event",
                "pull_request_review",
                "--action",
                "submitted",
                "--review-state",
                "approved",
                "--occurred-at",
                "yesterday",
            ],
            2,
            "--occurred-at \"yesterday\"",
        ),
        case(&["rollback", "--workflow", w], 3, "no earlier stage"),
        case(&["set", "completed", "--workflow", w], 3, "needs it at"),
        case(
            &["verify", "pending", "--workflow", w, "--task-id", "7"],
            7,
            "not 7",
        ),
    ];
    assert!(cases.len() >= 20);
    for case in &cases {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        // --kubeconfig given twice is refused by clap, so cases that bring their own skip ours.
        let run = if args.contains(&"--kubeconfig") {
            let mut command = crate::harness::stagectl_command();
            command.args(["-n", &ns.name]).args(&args);
            crate::harness::Run::of(command).await
        } else {
            ns.stagectl(&args).await
        };
        assert_eq!(run.code, case.code, "{args:?}: {}", run.stderr);
        let errors = run.error_lines();
        assert_eq!(
            errors.len(),
            1,
            "{args:?} must print one error line: {}",
            run.stderr
        );
        assert!(
            errors[0].contains(case.says),
            "{args:?}: {:?} does not say {:?}",
            errors[0],
            case.says
        );
        assert!(
            run.stdout.is_empty(),
            "{args:?} printed a result: {}",
            run.stdout
        );
    }

    let meta = ns.meta(&workflow).await;
    assert_eq!(meta.labels.as_ref().unwrap()["current-stage"], "pending");
    assert_eq!(meta.resource_version, created_version);
    let writes: Vec<_> = ns
        .audited_requests()
        .await
        .into_iter()
        .filter(|r| {
            r.resource == "workflows" && !matches!(r.verb.as_str(), "get" | "list" | "watch")
        })
        .filter(|r| r.code < 300)
        .collect();
    // Patches whose test failed (422) were sent and changed nothing; only the create succeeded.
    assert_eq!(writes.len(), 1, "only the test's own create: {writes:?}");
    assert_eq!(writes[0].verb, "create");
}

#[tokio::test]
#[ignore = "needs the control plane: make test"]
async fn a_cluster_without_argo_says_to_install_it() {
    let control_plane = OwnControlPlane::new("no-argo-crds");
    let kubeconfig = control_plane
        .start_with(&[("STAGECTL_CONTROLPLANE_CRDS", "none")])
        .await;
    let ns = TestNamespace::create_on(&kubeconfig, "no-argo-crds").await;
    for args in [
        vec!["set", "waiting-pr-created", "--workflow", "play-1"],
        vec!["get"],
        vec!["verify", "pending", "--workflow", "play-1"],
    ] {
        let run = ns.stagectl(&args).await;
        assert_eq!(run.code, 4, "{args:?}: {}", run.stderr);
        let errors = run.error_lines();
        assert_eq!(errors.len(), 1, "{}", run.stderr);
        assert!(
            errors[0].contains("install Argo Workflows"),
            "{}",
            errors[0]
        );
    }
}
