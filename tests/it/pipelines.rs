//! Pipeline definitions through the binary, no control plane needed: the shipped manifests are
//! what the shipped definition renders, and a definition or a directory that is wrong is named
//! line by line with nothing written.

use std::path::{Path, PathBuf};

use crate::harness::{Run, repo_path, stagectl_command};

async fn stagectl(args: &[&str]) -> Run {
    let mut command = stagectl_command();
    command.args(args);
    Run::of(command).await
}

/// An empty directory of this test's own under the target directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("pipelines")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[tokio::test]
async fn the_shipped_manifests_are_what_the_shipped_definition_renders() {
    let manifests = repo_path("workflow-templates");
    let manifests = manifests.to_str().unwrap();
    let definition = repo_path("workflow-templates/pipeline.yaml");
    // The built-in definition and the file are the same document.
    for global in [vec![], vec!["--pipeline", definition.to_str().unwrap()]] {
        let args: Vec<&str> = global
            .iter()
            .copied()
            .chain(["pipeline", "check", manifests])
            .collect();
        let run = stagectl(&args).await;
        run.assert_code(0);
        assert!(
            run.stdout.contains("agrees with pipeline play"),
            "{}",
            run.stdout
        );
    }
}

#[tokio::test]
async fn a_directory_that_disagrees_is_named_line_by_line() {
    let dir = scratch("disagrees");
    copy_dir(&repo_path("workflow-templates"), &dir);
    std::fs::remove_file(dir.join("sensor-waiting-ready-for-qa.yaml")).unwrap();
    let template = dir.join("play-workflow-template.yaml");
    let text = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        text.replace(
            "parameters: [{name: stage, value: waiting-pr-approved}]\n          - name: complete",
            "parameters: [{name: stage, value: waiting-pr-merged}]\n          - name: complete",
        ),
    )
    .unwrap();
    let run = stagectl(&["pipeline", "check", dir.to_str().unwrap()]).await;
    run.assert_code(7);
    for says in [
        "no suspend node at waiting stage waiting-pr-approved",
        "waits at \"waiting-pr-merged\", which is no waiting stage of pipeline play",
        "sensor-waiting-ready-for-qa.yaml is missing",
    ] {
        assert!(run.stdout.contains(says), "{says}: {}", run.stdout);
    }
    assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("in 3 places"), "{}", run.stderr);

    // Rendering writes the missing Sensor back; the template stays the operator's to fix.
    stagectl(&["pipeline", "render", "-d", dir.to_str().unwrap()])
        .await
        .assert_code(0);
    let run = stagectl(&["pipeline", "check", dir.to_str().unwrap()]).await;
    run.assert_code(7);
    assert!(run.stderr.contains("in 2 places"), "{}", run.stderr);
}

/// Each field of a definition wrong in turn: exit 2, one line that names the field, and nothing
/// rendered.
#[tokio::test]
async fn a_hostile_definition_is_refused_by_field_and_nothing_is_written() {
    let shipped = std::fs::read_to_string(repo_path("workflow-templates/pipeline.yaml")).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            shipped.replace("{event: review-approved}", "{event: review-blessed}"),
            "unknown variant `review-blessed`",
        ),
        (
            shipped.replace("- name: waiting-ready-for-qa", "- name: waiting-pr-created"),
            "spec.stages[2].name: \"waiting-pr-created\" is spec.stages[1] already",
        ),
        (
            shipped.replace("      releasedBy: {event: review-approved}\n", ""),
            "spec.stages[3].releasedBy: stage \"waiting-pr-approved\" is a wait",
        ),
        (
            shipped.replace("- name: completed", "- name: \"completed!\""),
            "spec.stages[4].name: \"completed!\" is not a label value",
        ),
        (
            shipped.replace("label: ready-for-qa", "label: \"\""),
            "releasedBy.label",
        ),
        (
            shipped.replace("name: play", "name: Play"),
            "metadata.name: \"Play\" is not a name",
        ),
        (
            shipped.replace("{event: review-approved}", "{event: pull-request-opened}"),
            "already releases \"waiting-pr-created\"",
        ),
        ("{{{".to_string(), "invalid pipeline"),
        (String::new(), "invalid pipeline"),
        ("x: \"".repeat(100_000), "larger than"),
    ];
    let dir = scratch("hostile");
    for (i, (text, says)) in cases.iter().enumerate() {
        let definition = dir.join(format!("definition-{i}.yaml"));
        std::fs::write(&definition, text).unwrap();
        let out = dir.join(format!("out-{i}"));
        let run = stagectl(&[
            "--pipeline",
            definition.to_str().unwrap(),
            "pipeline",
            "render",
            "-d",
            out.to_str().unwrap(),
        ])
        .await;
        run.assert_code(2);
        assert_eq!(run.error_lines().len(), 1, "{}", run.stderr);
        assert!(
            run.stderr.contains(says),
            "case {i}: {says}: {}",
            run.stderr
        );
        assert!(!out.exists(), "case {i} wrote {}", out.display());
    }
}
