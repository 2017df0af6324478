//! GitHub's REST API, for `reconcile`: the open pull requests of a repository and the reviews of
//! one, with a token or as a GitHub App's installation, every page followed, every request
//! conditional on the ETag of the last answer (a 304 costs nothing of the rate limit), and
//! GitHub's rate limit honoured: wait for its reset when allowed, else stop. The only GitHub
//! I/O, over the HTTP and TLS stack the Kubernetes client already brings (hyper, rustls, ring;
//! ring signs the App's JWT); what the answers mean is `core::github`'s.

mod answers;
mod auth;
mod cache;
mod limits;
mod transport;

pub use auth::{Credentials, Sources};
pub use cache::Cache;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::header::{
    ACCEPT, AUTHORIZATION, ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH, LINK, RETRY_AFTER,
    USER_AGENT,
};
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use crate::budget::{ATTEMPT_TIMEOUT, Deadline, backoff};
use answers::{
    CommitFields, IssueEventFields, PullFields, ReviewFields, RunsPage, SuitesPage, completed,
};
use auth::Auth;
use cache::CachedPage;
use limits::{Attempt, Limited, failed_answer};
use transport::Transport;

use crate::core::github::{Commit, Completed, Labelled, PullRequest, Review};
use crate::core::labels::Repository;
use crate::error::{Error, Result};

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
    http: Box<dyn Transport>,
    /// The API's root, without a trailing slash.
    api_url: String,
    auth: Auth,
    /// The budget of one request, retries included (--timeout).
    timeout: Duration,
    rate_limit_wait: Duration,
    cache: Mutex<Cache>,
    used: Mutex<Cache>,
    requests: AtomicU32,
    not_modified: AtomicU32,
}

impl GitHub {
    pub fn connect(options: Options, cache: Cache) -> Result<Self> {
        let api_url = options.api_url.trim_end_matches('/').to_string();
        let valid = api_url.parse::<Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("https" | "http")) && uri.host().is_some()
        });
        if !valid {
            return Err(Error::usage(format!(
                "invalid --github-api-url {:?}: give https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server",
                options.api_url
            )));
        }
        let auth = Auth::new(&options.credentials)?;
        let http = transport::https(&api_url)?;
        Ok(Self::over(Box::new(http), api_url, auth, &options, cache))
    }

    fn over(
        http: Box<dyn Transport>,
        api_url: String,
        auth: Auth,
        options: &Options,
        cache: Cache,
    ) -> Self {
        Self {
            http,
            api_url,
            auth,
            timeout: options.timeout,
            rate_limit_wait: options.rate_limit_wait,
            cache: Mutex::new(cache),
            used: Mutex::new(Cache::default()),
            requests: AtomicU32::new(0),
            not_modified: AtomicU32::new(0),
        }
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
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The repository's open pull requests, every page.
    pub async fn open_pulls(&self, repository: &Repository) -> Result<Vec<PullRequest>> {
        self.all_pages(
            format!(
                "/repos/{}/pulls?state=open&per_page=100",
                repository.full_name()
            ),
            |pulls: Vec<PullFields>| pulls.into_iter().map(PullFields::into_fact).collect(),
        )
        .await
    }

    /// The repository's closed pull requests, the most recently updated first, page after page
    /// until one reaches back before `since` (a merge gate's play began then: nothing older is
    /// its task's merge); without `since`, the first page.
    pub async fn closed_pulls(
        &self,
        repository: &Repository,
        since: Option<jiff::Timestamp>,
    ) -> Result<Vec<PullRequest>> {
        self.pages(
            format!(
                "/repos/{}/pulls?state=closed&sort=updated&direction=desc&per_page=100",
                repository.full_name()
            ),
            |pulls: Vec<PullFields>| pulls.into_iter().map(PullFields::into_fact).collect(),
            |page: &[PullRequest]| {
                since.is_none_or(|since| {
                    page.last()
                        .and_then(|pull| pull.updated_at)
                        .is_none_or(|at| at < since)
                })
            },
        )
        .await
    }

    /// The check suites that completed on a commit, every page.
    pub async fn check_suites(&self, repository: &Repository, sha: &str) -> Result<Vec<Completed>> {
        self.all_pages(
            format!(
                "/repos/{}/commits/{sha}/check-suites?per_page=100",
                repository.full_name()
            ),
            |page: SuitesPage| completed(page.check_suites),
        )
        .await
    }

    /// The GitHub Actions workflow runs that completed on a commit, every page.
    pub async fn workflow_runs(
        &self,
        repository: &Repository,
        sha: &str,
    ) -> Result<Vec<Completed>> {
        self.all_pages(
            format!(
                "/repos/{}/actions/runs?head_sha={sha}&per_page=100",
                repository.full_name()
            ),
            |page: RunsPage| completed(page.workflow_runs),
        )
        .await
    }

    /// The reviews of a pull request, oldest first, every page.
    pub async fn reviews(&self, repository: &Repository, number: u64) -> Result<Vec<Review>> {
        self.all_pages(
            format!(
                "/repos/{}/pulls/{number}/reviews?per_page=100",
                repository.full_name()
            ),
            |reviews: Vec<ReviewFields>| {
                reviews
                    .into_iter()
                    // A review by a deleted account has no user: it speaks for nobody.
                    .filter_map(|review| {
                        Some(Review {
                            reviewer: review.user?.id,
                            state: review.state,
                            submitted_at: review.submitted_at,
                        })
                    })
                    .collect()
            },
        )
        .await
    }

    /// The labels added to a pull request, and when (its issue's events), every page: for a
    /// play in a later pass, where the labels it carries say nothing of when they came.
    pub async fn label_events(
        &self,
        repository: &Repository,
        number: u64,
    ) -> Result<Vec<Labelled>> {
        self.all_pages(
            format!(
                "/repos/{}/issues/{number}/events?per_page=100",
                repository.full_name()
            ),
            |events: Vec<IssueEventFields>| {
                events
                    .into_iter()
                    .filter(|event| event.event == "labeled")
                    .filter_map(|event| {
                        Some(Labelled {
                            label: event.label?.name,
                            at: event.created_at,
                        })
                    })
                    .collect()
            },
        )
        .await
    }

    /// A pull request's commits, with their committers' dates, every page: for a play in a
    /// later pass, whose implementer pushes to the pull request opened in the first.
    pub async fn commits(&self, repository: &Repository, number: u64) -> Result<Vec<Commit>> {
        self.all_pages(
            format!(
                "/repos/{}/pulls/{number}/commits?per_page=100",
                repository.full_name()
            ),
            |commits: Vec<CommitFields>| {
                commits
                    .into_iter()
                    .map(|commit| Commit {
                        at: commit.commit.committer.and_then(|c| c.date),
                    })
                    .collect()
            },
        )
        .await
    }

    /// Every page from `first`, each answered from the cache when GitHub says 304.
    async fn all_pages<Raw, Fact>(
        &self,
        first: String,
        facts_of: impl Fn(Raw) -> Vec<Fact>,
    ) -> Result<Vec<Fact>>
    where
        Raw: DeserializeOwned,
        Fact: Serialize + DeserializeOwned,
    {
        self.pages(first, facts_of, |_| false).await
    }

    /// The pages from `first` until one that `last` says is enough, or the last page.
    async fn pages<Raw, Fact>(
        &self,
        first: String,
        facts_of: impl Fn(Raw) -> Vec<Fact>,
        last: impl Fn(&[Fact]) -> bool,
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
                .unwrap_or_else(PoisonError::into_inner)
                .pages
                .get(&url)
                .cloned();
            let page = match self
                .get(&url, cached.as_ref().map(|c| c.etag.as_str()))
                .await?
            {
                Answer::NotModified => cached.ok_or_else(|| {
                    Error::failed(format!(
                        "GitHub answered 304 Not Modified to GET {url}, which asked for no cached copy (a proxy's cache?); run again, or bypass the proxy for GitHub's API"
                    ))
                })?,
                Answer::Page { etag, next, body } => {
                    let raw: Raw = serde_json::from_str(&body).map_err(|e| {
                        Error::failed(format!(
                            "GitHub's answer to GET {url} is not the list its API describes: {e}"
                        ))
                    })?;
                    CachedPage {
                        etag: etag.unwrap_or_default(),
                        next,
                        items: serde_json::to_value(facts_of(raw)).map_err(|e| {
                            Error::failed(format!("cannot keep GitHub's answer to GET {url}: {e}"))
                        })?,
                    }
                }
            };
            let items: Vec<Fact> = serde_json::from_value(page.items.clone()).map_err(|e| {
                Error::failed(format!("the cached answer of GET {url} is unreadable: {e}"))
            })?;
            next = page.next.clone().filter(|_| !last(&items));
            all.extend(items);
            if !page.etag.is_empty() {
                self.used
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pages
                    .insert(url, page);
            }
        }
        Ok(all)
    }

    /// One GET, conditional on `etag`, of a path under the API's root or a URL GitHub gave.
    /// GitHub's transient failures (no connection, a dropped one, no answer within an attempt,
    /// a 5xx) are tried again with backoff until --timeout is spent; a rate limit is waited out
    /// when allowed (see [`Limited::allowed`]).
    async fn get(&self, url: &str, etag: Option<&str>) -> Result<Answer> {
        let absolute = if url.starts_with('/') {
            format!("{}{url}", self.api_url)
        } else {
            url.to_string()
        };
        let uri: Uri = absolute
            .parse()
            .map_err(|_| Error::failed(format!("cannot request {url}: not a valid URL")))?;
        let mut headers = Self::headers();
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

    /// The headers GitHub asks every client to send.
    fn headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static("2022-11-28"),
        );
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("stagectl/", env!("CARGO_PKG_VERSION"))),
        );
        headers
    }

    /// One request, and what its answer means.
    async fn attempt(
        &self,
        url: &str,
        uri: &Uri,
        headers: &HeaderMap,
        timeout: Duration,
    ) -> Attempt {
        let authorization = match self.authorization(timeout).await {
            Ok(value) => value,
            Err(attempt) => return attempt,
        };
        let mut request = Request::new(Full::default());
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers.clone();
        request.headers_mut().insert(AUTHORIZATION, authorization);
        let (status, response_headers, body) =
            match self.send(request, timeout, &format!("GET {url}")).await {
                Ok(answer) => answer,
                Err(attempt) => return attempt,
            };
        let header = |name: &str| {
            response_headers
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
            status => failed_answer(status, &format!("GET {url}")),
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

/// The `rel="next"` URL of a Link header, whole: on GitHub Enterprise Server it holds the
/// API's path prefix (/api/v3) too.
fn next_page(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == r#"rel="next""#)
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
            .filter(|url| url.parse::<Uri>().is_ok_and(|uri| uri.scheme().is_some()))
            .map(str::to_string)
    })
}

#[cfg(test)]
mod tests;
