//! Prometheus over the alert rules: what fires, against what the server holds.

use std::path::{Path, PathBuf};

use super::*;

/// The alert rules of examples/monitoring/prometheus-rule.yaml as a Prometheus rule file (the
/// PrometheusRule's spec) in `dir`.
pub fn write_alert_rules(dir: &Path) -> PathBuf {
    let rule: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_path("examples/monitoring/prometheus-rule.yaml")).unwrap(),
    )
    .unwrap();
    let path = dir.join("prometheus-rule.rules.yaml");
    std::fs::write(&path, serde_yaml::to_string(&rule["spec"]).unwrap()).unwrap();
    path
}

/// A Prometheus server — Debian's, beside the promtool `make test` unpacks
/// (STAGECTL_PROMTOOL) — scraping one target and evaluating the alert rules every few seconds,
/// on a loopback port of its own. Stopped, and its data removed, on drop.
pub struct Prometheus {
    child: std::process::Child,
    dir: PathBuf,
    pub url: String,
}

/// How often the soak's Prometheus scrapes and evaluates: the controller's series change at
/// most this long before it sees them.
pub const PROMETHEUS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

impl Prometheus {
    /// Scrapes `metrics_url` (http://HOST:PORT/PATH) with examples/monitoring's alert rules.
    pub async fn start(metrics_url: &str) -> Self {
        let promtool = std::env::var_os("STAGECTL_PROMTOOL")
            .map(PathBuf::from)
            .expect("STAGECTL_PROMTOOL is not set: run this with `make test`");
        let binary = promtool.with_file_name("prometheus");
        let dir = std::env::temp_dir().join(unique_name("prometheus"));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = write_alert_rules(&dir);
        let (target, path) = metrics_url
            .trim_start_matches("http://")
            .split_once('/')
            .expect("a metrics URL http://HOST:PORT/PATH");
        let every = format!("{}s", PROMETHEUS_INTERVAL.as_secs());
        let config = serde_json::json!({
            "global": {"scrape_interval": every, "evaluation_interval": every},
            "rule_files": [rules],
            "scrape_configs": [{
                "job_name": "workflow-controller",
                "metrics_path": format!("/{path}"),
                "static_configs": [{"targets": [target]}],
            }],
        });
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, serde_yaml::to_string(&config).unwrap()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = std::process::Command::new(&binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let prometheus = Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while prometheus.get("/-/ready", &[]).await.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "Prometheus not ready within 60 s; see {}",
                prometheus.dir.join("prometheus.log").display()
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        prometheus
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Option<String> {
        let mut command = tokio::process::Command::new("curl");
        command.args(["-sf", "-m", "10", "-G", &format!("{}{path}", self.url)]);
        for (key, value) in query {
            command.args(["--data-urlencode", &format!("{key}={value}")]);
        }
        let output = command.output().await.ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// An instant query's result vector.
    pub async fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let text = self
            .get("/api/v1/query", &[("query", promql)])
            .await
            .unwrap_or_else(|| panic!("Prometheus did not answer {promql}"));
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until Prometheus has scraped its target and then evaluated every rule group after
    /// `since` (unix milliseconds), so that what the target showed then is in the alerts.
    pub async fn caught_up(&self, since: i64) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let scraped = self
                .oldest("/api/v1/targets", "activeTargets", "lastScrape")
                .await;
            let evaluated = self
                .oldest("/api/v1/rules", "groups", "lastEvaluation")
                .await;
            if scraped.is_some_and(|s| s > since) && evaluated.is_some_and(|e| e > since) {
                // The evaluation must come after the scrape that saw the end.
                if evaluated > scraped {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Prometheus did not scrape and evaluate within 60 s; see {}",
                self.dir.join("prometheus.log").display()
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// The oldest of the `field` times of the `list` in an API answer, in unix milliseconds.
    async fn oldest(&self, path: &str, list: &str, field: &str) -> Option<i64> {
        let answer: serde_json::Value = serde_json::from_str(&self.get(path, &[]).await?).ok()?;
        answer["data"][list]
            .as_array()?
            .iter()
            .map(|item| {
                item[field]
                    .as_str()?
                    .parse::<jiff::Timestamp>()
                    .ok()
                    .map(|t| t.as_millisecond())
            })
            .collect::<Option<Vec<i64>>>()?
            .into_iter()
            .min()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
