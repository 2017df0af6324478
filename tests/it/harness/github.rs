//! GitHub as the tests see it: the stand-in for its REST API.

use super::*;

/// The stand-in for GitHub's REST API (tests/github/standin.mjs), one per test; stopped on drop.
pub struct GitHubStandIn {
    pub url: String,
    _process: tokio::process::Child,
}

impl GitHubStandIn {
    pub async fn start() -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut process = tokio::process::Command::new("node")
            .arg(repo_path("tests/github/standin.mjs"))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node tests/github/standin.mjs (make test installs its packages)");
        let stdout = process.stdout.take().unwrap();
        let mut line = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            tokio::io::BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("the stand-in listens within 30s")
        .unwrap();
        let url = line
            .trim()
            .strip_prefix("GITHUB_API_URL=")
            .unwrap_or_else(|| panic!("the stand-in printed {line:?}"))
            .to_string();
        Self {
            url,
            _process: process,
        }
    }

    /// Replaces the parts of its state given (see the top of standin.mjs).
    pub async fn set(&self, state: serde_json::Value) {
        let status = self.admin("PUT", "/_standin/state", Some(state)).await;
        assert_eq!(status.0, 204, "{}", status.1);
    }

    /// Every API request it answered: (method, path, status).
    pub async fn requests(&self) -> Vec<(String, String, u16)> {
        self.log("requests")
            .await
            .into_iter()
            .map(|r| {
                (
                    r["method"].as_str().unwrap().to_string(),
                    r["path"].as_str().unwrap().to_string(),
                    r["status"].as_u64().unwrap() as u16,
                )
            })
            .collect()
    }

    /// The next API requests, one each, meet these faults (see the top of standin.mjs); those
    /// still queued are dropped.
    pub async fn faults(&self, next: &[&str]) {
        let status = self
            .admin(
                "PUT",
                "/_standin/faults",
                Some(serde_json::json!({ "next": next })),
            )
            .await;
        assert_eq!(status.0, 204, "{}", status.1);
    }

    /// One of its logs (see the top of standin.mjs): `requests`, or of what happened on
    /// "GitHub", `changes` and `deliveries`.
    pub async fn log(&self, which: &str) -> Vec<serde_json::Value> {
        let (status, body) = self.admin("GET", &format!("/_standin/{which}"), None).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, String) {
        let mut command = tokio::process::Command::new("curl");
        command
            .args(["-s", "-o", "-", "-w", "\\n%{http_code}", "-X", method])
            .arg(format!("{}{path}", self.url));
        if let Some(body) = body {
            command.args(["--data-binary", &body.to_string()]);
        }
        let output = command.output().await.expect("curl");
        let text = String::from_utf8(output.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), body.to_string())
    }
}
