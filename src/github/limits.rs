//! What an answer of GitHub means for the request: done, worth another try, a rate limit to
//! wait out (GitHub's guidance for the primary and the secondary limits), or the end.

use std::time::Duration;

use http::StatusCode;

use super::Answer;
use crate::budget::Deadline;
use crate::error::Error;

/// One answer of GitHub, as `get` acts on it.
pub(super) enum Attempt {
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
pub(super) struct Limited {
    pub(super) secondary: bool,
    pub(super) retry_after: Option<Duration>,
    /// x-ratelimit-reset, when the primary limit is used up.
    pub(super) reset: Option<i64>,
}

impl Limited {
    /// How long to wait before the next request, the `nth` secondary limit met in this request.
    pub(super) fn pause(&self, nth: u32) -> Duration {
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
    pub(super) fn allowed(
        &self,
        pause: Duration,
        budget: &Deadline,
        waited: Duration,
        rate_limit_wait: Duration,
    ) -> bool {
        (self.secondary && pause < budget.remaining())
            || waited.saturating_add(pause) <= rate_limit_wait
    }

    pub(super) fn stop_message(&self, pause: Duration) -> String {
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

/// An answer that is neither data nor a refusal: a 5xx is worth trying again, anything else
/// ends the run.
pub(super) fn failed_answer(status: StatusCode, what: &str) -> Attempt {
    if status.is_server_error() {
        Attempt::Transient(format!("GitHub answered {} to {what}", status.as_u16()))
    } else {
        Attempt::Final(Error::gave_up(format!(
            "GitHub answered {} to {what}; nothing was written: run again later",
            status.as_u16()
        )))
    }
}
