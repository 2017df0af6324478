//! GitHub's REST API, for `reconcile`: the open pull requests of a repository and the reviews of
//! one, with a token or as a GitHub App's installation, every page followed, every request
//! conditional on the ETag of the last answer (a 304 costs nothing of the rate limit), and
//! GitHub's rate limit honoured: wait for its reset when allowed, else stop. The only GitHub
//! I/O, over the HTTP and TLS stack the Kubernetes client already brings (hyper, rustls, ring;
//! ring signs the App's JWT); what the answers mean is `core::github`'s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{
    ACCEPT, AUTHORIZATION, ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH, LINK, RETRY_AFTER,
    USER_AGENT,
};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::budget::{ATTEMPT_TIMEOUT, CONNECT_TIMEOUT, Deadline, backoff};

use crate::core::github::{PullRequest, Review};
use crate::core::labels::Repository;
use crate::error::{Error, Result};

/// How stagectl proves itself to GitHub.
pub enum Credentials {
    /// A personal access token, or any token GitHub accepts as a bearer.
    Token(String),
    /// A GitHub App, acting as one installation of it: a JWT signed with the App's private key
    /// is exchanged for an installation token, again when that one expires.
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

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct GitHub {
    http: HttpClient,
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

enum Auth {
    Token(HeaderValue),
    App(Box<App>),
}

struct App {
    id: u64,
    key: RsaKeyPair,
    installation_id: u64,
    /// The installation token and when it expires.
    token: tokio::sync::Mutex<Option<(HeaderValue, jiff::Timestamp)>>,
}

/// A pull request as GitHub's API writes it, for the fields reconcile reads.
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

#[derive(Deserialize)]
struct InstallationToken {
    token: String,
    expires_at: jiff::Timestamp,
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
        let auth = match options.credentials {
            Credentials::Token(token) => Auth::Token(bearer(&token).ok_or_else(|| {
                Error::usage("the GitHub token holds characters no HTTP header may carry")
            })?),
            Credentials::App {
                app_id,
                private_key_pem,
                installation_id,
            } => Auth::App(Box::new(App {
                id: app_id,
                key: rsa_key(&private_key_pem).ok_or_else(|| {
                    Error::usage(
                        "the GitHub App's private key is not an RSA key in PEM (download it from the App's settings)",
                    )
                })?,
                installation_id,
                token: tokio::sync::Mutex::new(None),
            })),
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.enforce_http(false);
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::failed(format!("cannot set up TLS for GitHub: {e}")))?
        .with_root_certificates(trusted_roots(&api_url)?)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(Self {
            http: Client::builder(TokioExecutor::new()).build(https),
            api_url,
            auth,
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
            |pulls: Vec<PullFields>| {
                pulls
                    .into_iter()
                    .map(|pull| PullRequest {
                        number: pull.number,
                        head_ref: pull.head.branch,
                        labels: pull.labels.into_iter().map(|label| label.name).collect(),
                    })
                    .collect()
            },
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
                        })
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
                    let raw: Vec<Raw> = serde_json::from_str(&body).map_err(|e| {
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
            all.extend(items);
            next = page.next.clone();
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
                Err(why) => return Attempt::Transient(why),
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

    /// The Authorization header: the token, or the App installation's token, asked for again
    /// a minute before it expires.
    async fn authorization(&self, timeout: Duration) -> std::result::Result<HeaderValue, Attempt> {
        let app = match &self.auth {
            Auth::Token(value) => return Ok(value.clone()),
            Auth::App(app) => app,
        };
        let (app_id, key, installation_id, held) =
            (app.id, &app.key, app.installation_id, &app.token);
        let mut held = held.lock().await;
        let now = jiff::Timestamp::now();
        if let Some((value, expires)) = held.as_ref()
            && expires.as_second() > now.as_second() + 60
        {
            return Ok(value.clone());
        }
        let jwt = app_jwt(app_id, key, now)
            .ok_or_else(|| Attempt::Final(Error::failed("cannot sign the GitHub App's JWT")))?;
        let url = format!(
            "{}/app/installations/{installation_id}/access_tokens",
            self.api_url
        );
        let what = format!("POST {url}");
        let mut request = Request::new(Full::default());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = url
            .parse()
            .map_err(|_| Attempt::Final(Error::failed(format!("cannot request {url}"))))?;
        *request.headers_mut() = Self::headers();
        // A JWT is base64url and dots, which a header always carries.
        let jwt = bearer(&jwt).ok_or_else(|| {
            Attempt::Final(Error::failed(
                "the GitHub App's JWT is no valid header value",
            ))
        })?;
        request.headers_mut().insert(AUTHORIZATION, jwt);
        let (status, _, body) = self
            .send(request, timeout, &what)
            .await
            .map_err(Attempt::Transient)?;
        match status {
            status if status.is_success() => {
                let answer: InstallationToken = serde_json::from_str(&body).map_err(|e| {
                    Attempt::Final(Error::failed(format!(
                        "GitHub's answer to {what} is not an installation token: {e}"
                    )))
                })?;
                let value = bearer(&answer.token).ok_or_else(|| {
                    Attempt::Final(Error::failed(format!(
                        "GitHub's answer to {what} is not a token a header can carry"
                    )))
                })?;
                *held = Some((value.clone(), answer.expires_at));
                Ok(value)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                Err(Attempt::Final(Error::forbidden(format!(
                    "GitHub did not give the App an installation token ({} on {what}): check the App id, its private key and the installation id",
                    status.as_u16()
                ))))
            }
            status => Err(failed_answer(status, &what)),
        }
    }

    /// Sends one request and reads its answer, within `timeout` each; Err says why it failed,
    /// a failure worth trying again.
    async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
        what: &str,
    ) -> std::result::Result<(StatusCode, HeaderMap, String), String> {
        let seconds = timeout.as_secs_f32().ceil();
        let response = match tokio::time::timeout(timeout, self.http.request(request)).await {
            Err(_) => return Err(format!("GitHub did not answer {what} within {seconds}s")),
            Ok(Err(err)) => {
                return Err(format!(
                    "cannot reach GitHub for {what}: {}",
                    error_chain(&err)
                ));
            }
            Ok(Ok(response)) => response,
        };
        let (parts, body) = response.into_parts();
        match tokio::time::timeout(timeout, body.collect()).await {
            Ok(Ok(body)) => Ok((
                parts.status,
                parts.headers,
                String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            )),
            Ok(Err(err)) => Err(format!(
                "GitHub's answer to {what} broke off: {}",
                error_chain(&err)
            )),
            Err(_) => Err(format!("GitHub's answer to {what} stalled for {seconds}s")),
        }
    }
}

/// An answer that is neither data nor a refusal: a 5xx is worth trying again, anything else
/// ends the run.
fn failed_answer(status: StatusCode, what: &str) -> Attempt {
    if status.is_server_error() {
        Attempt::Transient(format!("GitHub answered {} to {what}", status.as_u16()))
    } else {
        Attempt::Final(Error::gave_up(format!(
            "GitHub answered {} to {what}; nothing was written: run again later",
            status.as_u16()
        )))
    }
}

/// The CAs the system trusts: SSL_CERT_FILE or SSL_CERT_DIR, else the operating system's store
/// (the image's /etc/ssl/certs). An https API with none to verify it by is bad input.
fn trusted_roots(api_url: &str) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) =
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if added == 0 && api_url.starts_with("https://") {
        return Err(Error::usage(
            "no CA certificates to verify GitHub with: install the system's CA bundle, or point SSL_CERT_FILE at one",
        ));
    }
    Ok(roots)
}

fn bearer(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The App's private key, as GitHub gives it (PKCS#1 PEM) or converted to PKCS#8.
fn rsa_key(pem: &[u8]) -> Option<RsaKeyPair> {
    match PrivateKeyDer::from_pem_slice(pem).ok()? {
        PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()).ok(),
        PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).ok(),
        _ => None,
    }
}

/// The JWT that proves the App to GitHub: RS256, issued a minute back (for clocks that drift),
/// valid for the nine minutes after now (GitHub allows ten).
fn app_jwt(app_id: u64, key: &RsaKeyPair, now: jiff::Timestamp) -> Option<String> {
    let now = now.as_second();
    let claims = serde_json::json!({"iat": now - 60, "exp": now + 540, "iss": app_id.to_string()});
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .ok()?;
    Some(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// An error and its causes on one line: hyper's own says little ("client error (Connect)").
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = cause.source();
    }
    crate::core::one_line(&text)
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
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_read_from_githubs_link_header() {
        let link = r#"<https://api.github.com/repositories/1/pulls?state=open&per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/pulls?state=open&per_page=100&page=4>; rel="last""#;
        assert_eq!(
            next_page(link).as_deref(),
            Some("https://api.github.com/repositories/1/pulls?state=open&per_page=100&page=2")
        );
        let last = r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first""#;
        assert_eq!(next_page(last), None);
    }
}
