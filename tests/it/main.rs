//! Integration tests: one binary, run against the real control plane of tests/controlplane.
//! `make test` starts it and runs them; plain `cargo test` lists them as ignored.

mod harness;

mod architecture;

mod controlplane;
mod e2e;
mod events;
mod faults;
mod hostile_inputs;
mod image;
mod manifests;
mod pipelines;
mod policy;
mod reconcile;
mod resume;
mod soak;
mod stage_changes;

/// The binary's own interface, no control plane needed.
mod cli {
    use crate::harness::{Run, repo_path, stagectl_command};

    #[tokio::test]
    async fn help_documents_every_exit_code_as_the_readme_does() {
        let mut command = stagectl_command();
        command.arg("--help");
        let help = Run::of(command).await;
        help.assert_code(0);
        let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
        for code in 0..=7 {
            assert!(
                help.stdout.contains(&format!("\n  {code}  ")),
                "--help lacks exit code {code}"
            );
            assert!(
                readme.contains(&format!("\n| {code} | ")),
                "README lacks exit code {code}"
            );
        }
    }

    #[tokio::test]
    async fn completions_are_generated_for_every_subcommand() {
        let mut command = stagectl_command();
        command.args(["completions", "bash"]);
        let script = Run::of(command).await;
        script.assert_code(0);
        for subcommand in [
            "set",
            "verify",
            "get",
            "rollback",
            "resume",
            "reconcile",
            "pipeline",
        ] {
            assert!(script.stdout.contains(subcommand), "{subcommand} missing");
        }
    }
}
