//! The one retry policy every API call goes through.
//!
//! Transient, and tried again with exponential backoff and jitter until the operation's budget
//! is spent:
//! - no connection, a dropped one, or an attempt that got no answer within [`ATTEMPT_TIMEOUT`]
//!   (a stalled connection costs a fraction of the budget, not all of it);
//! - 429 (after its Retry-After), including "storage is (re)initializing";
//! - 5xx, and 409 Conflict;
//! - 401 and 403 from a server that is coming up: within [`SETTLING`] of this process finding
//!   the server unreachable or failing, or unless the server's own `/readyz` answers 200. A
//!   restarted kube-apiserver answers requests before its caches of ServiceAccounts and RBAC
//!   rules are filled, and refuses valid credentials (401) and permissions (403) until they are.
//!   After a 403, `/readyz` is asked with our own credentials (a server that is up lets every
//!   authenticated user read it); after a 401, without (it lets anonymous users read it), and an
//!   anonymous request refused with 401 (anonymous access turned off) tells nothing either way.
//!
//! Everything else is final at once: 400, 404, 422, a 401 or 403 from a server that is up, so a
//! wrong credential or a missing permission fails on its first answer, and an admission policy's
//! denial (a 403 that says so), which the same write meets again.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use kube::{Client, Config};
use tokio::time::Instant;

use crate::budget::{ATTEMPT_TIMEOUT, CONNECT_TIMEOUT, Deadline, backoff};
use tracing::{debug, warn};

use super::{admission_refusal, describe};

/// How long after the server was seen unreachable or failing a refusal of the credentials is
/// taken for a server still filling its caches.
pub const SETTLING: Duration = Duration::from_secs(30);

/// A failed call, and whether the policy took its last error for transient (the budget ran
/// out on it) or final.
#[derive(Debug)]
pub struct CallError {
    pub error: kube::Error,
    pub transient: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Retry(Option<Duration>),
    Final,
}

pub struct Policy {
    /// The client of the calls, to ask `/readyz` after a 403.
    client: Client,
    /// The same server without credentials, to ask `/readyz` after a 401; made when first needed.
    anonymous_config: Config,
    anonymous: OnceLock<Option<Client>>,
    server: String,
    requests: AtomicU32,
    retries: AtomicU32,
    /// When the server was last found unreachable or failing.
    unsettled_at: Mutex<Option<Instant>>,
}

impl Policy {
    pub fn new(client: Client, mut anonymous_config: Config, server: String) -> Self {
        anonymous_config.auth_info = Default::default();
        Self {
            client,
            anonymous_config,
            anonymous: OnceLock::new(),
            server,
            requests: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            unsettled_at: Mutex::new(None),
        }
    }

    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }

    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs one API call under the policy until it succeeds, fails for good, or `budget` is spent.
    pub async fn call<T, F, Fut>(
        &self,
        what: &str,
        budget: Deadline,
        mut op: F,
    ) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = kube::Result<T>>,
    {
        let mut delays = backoff(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            self.count_request();
            let limit = ATTEMPT_TIMEOUT.min(budget.remaining());
            let error = match tokio::time::timeout(limit, op()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => error,
                Err(_) => kube::Error::Service(
                    format!("no answer within {}s", limit.as_secs_f32().ceil()).into(),
                ),
            };
            let delay = match self.verdict(&error).await {
                Verdict::Final => {
                    return Err(CallError {
                        error,
                        transient: false,
                    });
                }
                Verdict::Retry(after) => after
                    .or_else(|| delays.next())
                    .unwrap_or(Duration::from_secs(5)),
            };
            if delay >= budget.remaining() {
                return Err(CallError {
                    error,
                    transient: true,
                });
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            warn!(call = what, error = %describe(&error), retry_in_ms = delay.as_millis() as u64, "transient API error; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn verdict(&self, error: &kube::Error) -> Verdict {
        if admission_refusal(error).is_some() {
            return Verdict::Final;
        }
        if let kube::Error::Api(status) = error
            && matches!(status.code, 401 | 403)
        {
            return if self.unsettled_recently() || self.server_not_ready(status.code).await {
                debug!(
                    code = status.code,
                    "credentials refused by a server that is coming up; trying again"
                );
                Verdict::Retry(None)
            } else {
                Verdict::Final
            };
        }
        if !is_transient(error) {
            return Verdict::Final;
        }
        if shows_server_unsettled(error) {
            *self
                .unsettled_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        }
        Verdict::Retry(retry_after(error))
    }

    fn unsettled_recently(&self) -> bool {
        self.unsettled_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < SETTLING)
    }

    /// Asks `/readyz` whether the server is up, after a refusal with `code`: with our own
    /// credentials after a 403, without after a 401. Only a 200 says it is up; an anonymous
    /// request refused with 401 means anonymous access is off, which says nothing.
    async fn server_not_ready(&self, code: u16) -> bool {
        self.count_request();
        let probe = if code == 403 {
            &self.client
        } else {
            let anonymous = self
                .anonymous
                .get_or_init(|| Client::try_from(self.anonymous_config.clone()).ok());
            match anonymous {
                Some(client) => client,
                None => return false,
            }
        };
        let mut request = http::Request::new(Vec::new());
        *request.uri_mut() = http::Uri::from_static("/readyz");
        let answer = tokio::time::timeout(CONNECT_TIMEOUT, probe.request_text(request)).await;
        let not_ready = match &answer {
            Ok(Ok(_)) => false,
            Ok(Err(kube::Error::Api(status))) => !(code == 401 && status.code == 401),
            Ok(Err(_)) | Err(_) => true,
        };
        debug!(server = %self.server, not_ready, "asked /readyz after a {code}");
        if not_ready {
            *self
                .unsettled_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        }
        not_ready
    }
}

/// Errors that can heal by themselves: the connection, throttling, the server's own trouble,
/// an optimistic-concurrency conflict. Never 400/401/403/404/422 on their own: see [`Policy`].
pub fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => {
            status.code == 429
                || status.code >= 500
                || (status.code == 409 && status.reason == "Conflict")
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Failures that say the server itself is down, starting or unwell (not a conflict, not
/// ordinary throttling).
fn shows_server_unsettled(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => {
            status.code >= 500 || (status.code == 429 && status.message.contains("initializing"))
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

fn retry_after(err: &kube::Error) -> Option<Duration> {
    match err {
        kube::Error::Api(status) if status.code == 429 => status
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|secs| *secs > 0)
            .map(|secs| Duration::from_secs(u64::from(secs))),
        _ => None,
    }
}
