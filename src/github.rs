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
use tracing::{debug, info};

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
    /// How long one request may take.
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
    options_timeout: Duration,
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
            .set_connect_timeout(Some(options.timeout))
            .set_read_timeout(Some(options.timeout));
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
            options_timeout: options.timeout,
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

    /// One GET, conditional on `etag`; waits out the rate limit when allowed.
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
        let mut waited = Duration::ZERO;
        loop {
            let sent = tokio::time::timeout(
                self.options_timeout,
                self.crab
                    ._get_with_headers(uri.clone(), Some(headers.clone())),
            )
            .await;
            let response = match sent {
                Err(_) => {
                    return Err(Error::gave_up(format!(
                        "GitHub did not answer GET {url} within {}s; check --github-api-url and the network",
                        self.options_timeout.as_secs()
                    )));
                }
                Ok(Err(err)) => {
                    return Err(Error::gave_up(format!(
                        "cannot reach GitHub for GET {url}: {}",
                        one_line_error(&err)
                    )));
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
            debug!(
                url,
                status = status.as_u16(),
                remaining = remaining.as_deref(),
                "GitHub"
            );
            match status {
                StatusCode::NOT_MODIFIED => {
                    self.not_modified.fetch_add(1, Ordering::Relaxed);
                    return Ok(Answer::NotModified);
                }
                status if status.is_success() => {
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    let etag = header(ETAG.as_str());
                    let next = header(LINK.as_str()).and_then(|link| next_page(&link));
                    let body = self.crab.body_to_string(response).await.map_err(|e| {
                        Error::gave_up(format!("GitHub's answer to GET {url} broke off: {e}"))
                    })?;
                    return Ok(Answer::Page { etag, next, body });
                }
                StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
                    if remaining.as_deref() == Some("0")
                        || header(RETRY_AFTER.as_str()).is_some() =>
                {
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    let now = jiff::Timestamp::now().as_second();
                    let until = header(RETRY_AFTER.as_str())
                        .and_then(|s| s.parse::<i64>().ok())
                        .map(|after| now + after)
                        .or_else(|| header("x-ratelimit-reset").and_then(|s| s.parse().ok()))
                        .unwrap_or(now + 60);
                    let pause = Duration::from_secs(until.saturating_sub(now).max(1) as u64);
                    if waited + pause > self.rate_limit_wait {
                        let at = jiff::Timestamp::from_second(until)
                            .map(|t| t.to_string())
                            .unwrap_or_else(|_| until.to_string());
                        return Err(Error::gave_up(format!(
                            "GitHub's rate limit is used up until {at}; nothing was written: run again after it, or allow a wait with --rate-limit-wait"
                        )));
                    }
                    info!(
                        url,
                        wait_s = pause.as_secs(),
                        "GitHub's rate limit is used up; waiting for its reset"
                    );
                    tokio::time::sleep(pause).await;
                    waited += pause;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(Error::forbidden(format!(
                        "GitHub did not accept the credentials (401 on GET {url}): check the token, or the App id, key and installation"
                    )));
                }
                StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                    return Err(Error::forbidden(format!(
                        "GitHub answered {} to GET {url}: the repository does not exist or the credentials may not read its pull requests (grant Pull requests: read)",
                        status.as_u16()
                    )));
                }
                status => {
                    return Err(Error::gave_up(format!(
                        "GitHub answered {} to GET {url}; nothing was written: run again later",
                        status.as_u16()
                    )));
                }
            }
        }
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
