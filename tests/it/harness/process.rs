//! stagectl as a process: the command with a clean environment, and what a run left.

/// `stagectl resume` of the delivery `delivery` at `stage` for the example play's task (42 of
/// acme/widgets), then `more`.
pub fn resume_args<'a>(stage: &'a str, delivery: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "resume",
        "--stage",
        stage,
        "--task-id",
        "42",
        "--repository",
        "acme/widgets",
        "--delivery-id",
        delivery,
    ];
    args.extend(more);
    args
}

pub fn stagectl_command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_stagectl"));
    // Tests must not pick up the developer's own settings.
    for var in [
        "STAGECTL_NAMESPACE",
        "STAGECTL_WORKFLOW",
        "STAGECTL_STAGES",
        "STAGECTL_PIPELINE",
        "STAGECTL_TIMEOUT",
        "STAGECTL_LOG",
        "GITHUB_TOKEN",
        "GITHUB_API_URL",
        "GITHUB_APP_ID",
        "GITHUB_APP_KEY_FILE",
        "GITHUB_APP_INSTALLATION_ID",
    ] {
        command.env_remove(var);
    }
    command.env(
        "KUBECONFIG",
        "/nonexistent/stagectl-tests-pass-kubeconfig-explicitly",
    );
    command.kill_on_drop(true);
    command
}

/// A finished stagectl process.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The names of the `items` of a list printed with `-o json`.
    pub fn item_names(&self) -> Vec<String> {
        self.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn of(mut command: tokio::process::Command) -> Self {
        let output = command.output().await.expect("run stagectl");
        Self {
            code: output
                .status
                .code()
                .expect("stagectl exited, not killed by a signal"),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }

    /// The `error: …` lines on stderr; a failure must have exactly one.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The HTTP status of a failed API call, for tests that assert how the server refused.
pub fn api_status<T: std::fmt::Debug>(result: kube::Result<T>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error status, got {other:?}"),
    }
}
