//! GitHub's REST API, for `reconcile`: the open pull requests of a repository and the reviews of
//! one, through octocrab (a token, or a GitHub App's installation), every page followed, every
//! request conditional on the ETag of the last answer (a 304 costs nothing of the rate limit),
//! and GitHub's rate limit honoured: wait for its reset when allowed, else stop. The only
//! GitHub I/O; what the answers mean is `core::github`'s.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::header::{ACCEPT, ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH, LINK, RETRY_AFTER};
use http::{StatusCode, Uri};
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::cluster::{ATTEMPT_TIMEOUT, CONNECT_TIMEOUT, Deadline, backoff};

use crate::core::github::{PullRequest, Review};
use crate::core::labels::Repository;
use crate::error::{Error, Result};

/// How stagectl proves itself to GitHub.
pub enum Credentials {
    /// A personal access token, or any token GitHub accepts as a bearer.
    Token(String),
    /// A GitHub App, acting as one installation of it: octocrab signs the App's JWT with the
    /// private key and exchanges it for installation tokens as they expire.
    App {
        app_id: u64,
        private_key_pem: Vec<u8>,
        installation_id: u64,
    },
}

pub struct Options {
    /// The REST API's root: https://api.github.com, or https://HOST/api/v3 for GitHub
    /// Enterprise Server.
    pub api_url: String,
    pub credentials: Credentials,
    /// How long one request may keep trying GitHub's transient failures.
    pub timeout: Duration,
    /// How long to wait for the rate limit to reset before giving up.
    pub rate_limit_wait: Duration,
}

/// What the last run learnt, kept between runs: per URL, GitHub's ETag and what its answer
/// said. An answer unchanged since is a 304, which GitHub does not count against the limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cache {
    pub pages: BTreeMap<String, CachedPage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedPage {
    pub etag: String,
    /// The next page's URL, as the Link header gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub items: serde_json::Value,
}

/// What GitHub was asked, for the logs and the output.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    /// Requests answered with data: each counts against the rate limit.
    pub requests: u32,
    /// Requests answered 304 Not Modified: free.
    pub not_modified: u32,
}

pub struct GitHub {
    crab: Octocrab,
    /// The budget of one request, retries included (--timeout).
    timeout: Duration,
    rate_limit_wait: Duration,
    cache: Mutex<Cache>,
    used: Mutex<Cache>,
    requests: AtomicU32,
    not_modified: AtomicU32,
}

/// The fields of a pull request reconcile reads (GitHub sends many more).
#[derive(Deserialize)]
struct PullFields {
    number: u64,
    head: HeadFields,
    #[serde(default)]
    labels: Vec<LabelFields>,
}

#[derive(Deserialize)]
struct HeadFields {
    #[serde(rename = "ref")]
    branch: String,
}

#[derive(Deserialize)]
struct LabelFields {
    name: String,
}

#[derive(Deserialize)]
struct ReviewFields {
    user: Option<UserFields>,
    state: String,
}

#[derive(Deserialize)]
struct UserFields {
    id: u64,
}

/// The facts kept in the cache, per item.
#[derive(Serialize, Deserialize)]
struct PullFacts {
    number: u64,
    branch: String,
    labels: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct ReviewFacts {
    reviewer: u64,
    state: String,
}

impl GitHub {
    pub fn connect(options: Options, cache: Cache) -> Result<Self> {
        let usage = |what: &str, err: octocrab::Error| {
            Error::usage(format!("{what}: {}", one_line_error(&err)))
        };
        let builder = Octocrab::builder()
            .base_uri(options.api_url.as_str())
            .map_err(|e| {
                usage(
                    &format!("invalid --github-api-url {:?}", options.api_url),
                    e,
                )
            })?
            .set_connect_timeout(Some(CONNECT_TIMEOUT))
            .set_read_timeout(Some(ATTEMPT_TIMEOUT));
        let crab = match options.credentials {
            Credentials::Token(token) => builder.personal_token(token).build(),
            Credentials::App {
                app_id,
                private_key_pem,
                installation_id,
            } => builder
                .app_from_rsa_pem(app_id.into(), private_key_pem)
                .map_err(|e| {
                    usage(
                        "the GitHub App's private key is not an RSA key in PEM (download it from the App's settings)",
                        e,
                    )
                })?
                .build()
                .and_then(|app| app.installation(installation_id.into())),
        }
        .map_err(|e| usage("cannot set up the GitHub client", e))?;
        Ok(Self {
            crab,
            timeout: options.timeout,
            rate_limit_wait: options.rate_limit_wait,
            cache: Mutex::new(cache),
            used: Mutex::new(Cache::default()),
            requests: AtomicU32::new(0),
            not_modified: AtomicU32::new(0),
        })
    }

    pub fn cost(&self) -> Cost {
        Cost {
            requests: self.requests.load(Ordering::Relaxed),
            not_modified: self.not_modified.load(Ordering::Relaxed),
        }
    }

    /// The pages this run read, to keep for the next: only those, so the cache never grows
    /// with pull requests long closed.
    pub fn cache_to_keep(&self) -> Cache {
        self.used.lock().expect("cache lock").clone()
    }

    /// The repository's open pull requests, every page.
    pub async fn open_pulls(&self, repository: &Repository) -> Result<Vec<PullRequest>> {
        let facts: Vec<PullFacts> = self
            .all_pages(
                format!(
                    "/repos/{}/pulls?state=open&per_page=100",
                    repository.full_name()
                ),
                |pulls: Vec<PullFields>| {
                    pulls
                        .into_iter()
                        .map(|pull| PullFacts {
                            number: pull.number,
                            branch: pull.head.branch,
                            labels: pull.labels.into_iter().map(|label| label.name).collect(),
                        })
                        .collect()
                },
            )
            .await?;
        Ok(facts
            .into_iter()
            .map(|pull| PullRequest {
                number: pull.number,
                head_ref: pull.branch,
                labels: pull.labels,
            })
            .collect())
    }

    /// The reviews of a pull request, oldest first, every page.
    pub async fn reviews(&self, repository: &Repository, number: u64) -> Result<Vec<Review>> {
        let facts: Vec<ReviewFacts> = self
            .all_pages(
                format!(
                    "/repos/{}/pulls/{number}/reviews?per_page=100",
                    repository.full_name()
                ),
                |reviews: Vec<ReviewFields>| {
                    reviews
                        .into_iter()
                        // A review by a deleted account has no user: it speaks for nobody.
                        .filter_map(|review| {
                            Some(ReviewFacts {
                                reviewer: review.user?.id,
                                state: review.state,
                            })
                        })
                        .collect()
                },
            )
            .await?;
        Ok(facts
            .into_iter()
            .map(|review| Review {
                reviewer: review.reviewer,
                state: review.state,
            })
            .collect())
    }

    /// Every page from `first`, each answered from the cache when GitHub says 304.
    async fn all_pages<Raw, Fact>(
        &self,
        first: String,
        facts_of: impl Fn(Vec<Raw>) -> Vec<Fact>,
    ) -> Result<Vec<Fact>>
    where
        Raw: DeserializeOwned,
        Fact: Serialize + DeserializeOwned,
    {
        let mut all = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            let cached = self
                .cache
                .lock()
                .expect("cache lock")
                .pages
                .get(&url)
                .cloned();
            let page = match self
                .get(&url, cached.as_ref().map(|c| c.etag.as_str()))
                .await?
            {
                Answer::NotModified => cached.expect("a 304 answers a conditional request"),
                Answer::Page { etag, next, body } => {
                    let raw: Vec<Raw> = serde_json::from_str(&body).map_err(|e| {
                        Error::failed(format!(
                            "GitHub's answer to GET {url} is not the list its API describes: {e}"
                        ))
                    })?;
                    CachedPage {
                        etag: etag.unwrap_or_default(),
                        next,
                        items: serde_json::to_value(facts_of(raw)).expect("facts serialize"),
                    }
                }
            };
            let items: Vec<Fact> = serde_json::from_value(page.items.clone()).map_err(|e| {
                Error::failed(format!("the cached answer of GET {url} is unreadable: {e}"))
            })?;
            all.extend(items);
            next = page.next.clone();
            if !page.etag.is_empty() {
                self.used
                    .lock()
                    .expect("cache lock")
                    .pages
                    .insert(url, page);
            }
        }
        Ok(all)
    }

    /// One GET, conditional on `etag`. GitHub's transient failures (no connection, a dropped
    /// one, no answer within an attempt, a 5xx) are tried again with backoff until --timeout is
    /// spent; a rate limit is waited out when allowed (see [`Limited::allowed`]).
    async fn get(&self, url: &str, etag: Option<&str>) -> Result<Answer> {
        let uri: Uri = url
            .parse()
            .map_err(|_| Error::failed(format!("cannot request {url}: not a valid path")))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static("2022-11-28"),
        );
        if let Some(etag) = etag.and_then(|etag| HeaderValue::from_str(etag).ok()) {
            headers.insert(IF_NONE_MATCH, etag);
        }
        let budget = Deadline::after(self.timeout);
        let mut delays = backoff(Duration::from_millis(500), Duration::from_secs(8));
        let mut limit_waited = Duration::ZERO;
        let mut secondary_limits = 0;
        loop {
            let attempt_timeout = ATTEMPT_TIMEOUT.min(budget.remaining());
            let pause = match self.attempt(url, &uri, &headers, attempt_timeout).await {
                Attempt::Done(answer) => return Ok(answer),
                Attempt::Final(err) => return Err(err),
                Attempt::Transient(why) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(8));
                    if delay >= budget.remaining() {
                        return Err(Error::gave_up(format!(
                            "{why}, and so on for {}s (--timeout); nothing was written: run again later",
                            budget.spent().as_secs()
                        )));
                    }
                    warn!(url, error = %why, retry_in_ms = delay.as_millis() as u64, "GitHub failed; trying again");
                    delay
                }
                Attempt::Limited(limited) => {
                    if limited.secondary {
                        secondary_limits += 1;
                    }
                    let pause = limited.pause(secondary_limits);
                    if !limited.allowed(pause, &budget, limit_waited, self.rate_limit_wait) {
                        return Err(Error::gave_up(limited.stop_message(pause)));
                    }
                    info!(
                        url,
                        wait_s = pause.as_secs(),
                        secondary = limited.secondary,
                        "GitHub's rate limit is reached; waiting as it asks"
                    );
                    limit_waited += pause;
                    pause
                }
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// One request, and what its answer means.
    async fn attempt(
        &self,
        url: &str,
        uri: &Uri,
        headers: &HeaderMap,
        timeout: Duration,
    ) -> Attempt {
        let sent = tokio::time::timeout(
            timeout,
            self.crab
                ._get_with_headers(uri.clone(), Some(headers.clone())),
        )
        .await;
        let response = match sent {
            Err(_) => {
                return Attempt::Transient(format!(
                    "GitHub did not answer GET {url} within {}s",
                    timeout.as_secs_f32().ceil()
                ));
            }
            Ok(Err(err)) => {
                return Attempt::Transient(format!(
                    "cannot reach GitHub for GET {url}: {}",
                    one_line_error(&err)
                ));
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let remaining = header("x-ratelimit-remaining");
        let retry_after = header(RETRY_AFTER.as_str()).and_then(|s| s.trim().parse::<u64>().ok());
        let reset = header("x-ratelimit-reset").and_then(|s| s.parse::<i64>().ok());
        let etag = header(ETAG.as_str());
        let next = header(LINK.as_str()).and_then(|link| next_page(&link));
        debug!(
            url,
            status = status.as_u16(),
            remaining = remaining.as_deref(),
            "GitHub"
        );
        if status == StatusCode::NOT_MODIFIED {
            self.not_modified.fetch_add(1, Ordering::Relaxed);
            return Attempt::Done(Answer::NotModified);
        }
        // Every answer but a 304 counts against the rate limit.
        self.requests.fetch_add(1, Ordering::Relaxed);
        let body = if status.is_success()
            || matches!(
                status,
                StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
            ) {
            match tokio::time::timeout(timeout, self.crab.body_to_string(response)).await {
                Ok(Ok(body)) => body,
                Ok(Err(err)) => {
                    return Attempt::Transient(format!(
                        "GitHub's answer to GET {url} broke off: {}",
                        one_line_error(&err)
                    ));
                }
                Err(_) => {
                    return Attempt::Transient(format!(
                        "GitHub's answer to GET {url} stalled for {}s",
                        timeout.as_secs_f32().ceil()
                    ));
                }
            }
        } else {
            String::new()
        };
        match status {
            status if status.is_success() => Attempt::Done(Answer::Page { etag, next, body }),
            StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
                if remaining.as_deref() == Some("0")
                    || retry_after.is_some()
                    || body.contains("secondary rate limit") =>
            {
                let primary = remaining.as_deref() == Some("0") && retry_after.is_none();
                Attempt::Limited(Limited {
                    secondary: !primary,
                    retry_after: retry_after.map(Duration::from_secs),
                    reset: reset.filter(|_| remaining.as_deref() == Some("0")),
                })
            }
            StatusCode::UNAUTHORIZED => Attempt::Final(Error::forbidden(format!(
                "GitHub did not accept the credentials (401 on GET {url}): check the token, or the App id, key and installation"
            ))),
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                Attempt::Final(Error::forbidden(format!(
                    "GitHub answered {} to GET {url}: the repository does not exist or the credentials may not read its pull requests (grant Pull requests: read)",
                    status.as_u16()
                )))
            }
            status if status.is_server_error() => {
                Attempt::Transient(format!("GitHub answered {} to GET {url}", status.as_u16()))
            }
            status => Attempt::Final(Error::gave_up(format!(
                "GitHub answered {} to GET {url}; nothing was written: run again later",
                status.as_u16()
            ))),
        }
    }
}

/// One answer of GitHub, as `get` acts on it.
enum Attempt {
    Done(Answer),
    /// Worth trying again after a backoff.
    Transient(String),
    /// A rate limit: try again after the time GitHub names.
    Limited(Limited),
    Final(Error),
}

/// A rate-limited answer. GitHub's guidance: after a secondary limit wait Retry-After, or if
/// none is given at least a minute, longer each time; after the primary limit (remaining 0)
/// wait until its reset.
struct Limited {
    secondary: bool,
    retry_after: Option<Duration>,
    /// x-ratelimit-reset, when the primary limit is used up.
    reset: Option<i64>,
}

impl Limited {
    /// How long to wait before the next request, the `nth` secondary limit met in this request.
    fn pause(&self, nth: u32) -> Duration {
        if let Some(after) = self.retry_after {
            return after.max(Duration::from_secs(1));
        }
        if let Some(reset) = self.reset {
            let now = jiff::Timestamp::now().as_second();
            return Duration::from_secs(reset.saturating_sub(now).max(1) as u64);
        }
        Duration::from_secs(60 << nth.saturating_sub(1).min(4))
    }

    /// A secondary limit is a pause in a burst: waited out within the request's own budget
    /// (--timeout), as a transient failure is. The primary limit can last up to an hour: only
    /// with --rate-limit-wait, which bounds every wait for a limit together.
    fn allowed(
        &self,
        pause: Duration,
        budget: &Deadline,
        waited: Duration,
        rate_limit_wait: Duration,
    ) -> bool {
        (self.secondary && pause < budget.remaining()) || waited + pause <= rate_limit_wait
    }

    fn stop_message(&self, pause: Duration) -> String {
        let now = jiff::Timestamp::now().as_second();
        let until = match (self.secondary, self.reset) {
            (false, Some(reset)) => reset,
            _ => now.saturating_add(pause.as_secs() as i64),
        };
        let at = jiff::Timestamp::from_second(until)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| until.to_string());
        let what = if self.secondary {
            "secondary rate limit holds requests"
        } else {
            "rate limit is used up"
        };
        format!(
            "GitHub's {what} until {at}; nothing was written: run again after it, or allow a wait with --rate-limit-wait"
        )
    }
}

enum Answer {
    NotModified,
    Page {
        etag: Option<String>,
        next: Option<String>,
        body: String,
    },
}

/// The `rel="next"` URL of a Link header, as a path and query (the API root is the client's).
fn next_page(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == r#"rel="next""#)
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
            .and_then(|url| url.parse::<Uri>().ok())
            .and_then(|uri| uri.path_and_query().map(|pq| pq.to_string()))
    })
}

fn one_line_error(err: &octocrab::Error) -> String {
    crate::core::one_line(&err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_read_from_githubs_link_header() {
        let link = r#"<https://api.github.com/repositories/1/pulls?state=open&per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/pulls?state=open&per_page=100&page=4>; rel="last""#;
        assert_eq!(
            next_page(link).as_deref(),
            Some("/repositories/1/pulls?state=open&per_page=100&page=2")
        );
        let last = r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first""#;
        assert_eq!(next_page(last), None);
    }
}
