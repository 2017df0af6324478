//! Time budgets every remote call is held to, Kubernetes' and GitHub's alike: an operation's
//! deadline, one attempt's limit, and the backoff between attempts.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;

/// A server that does not accept a connection within this is not going to soon.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt's answer: long enough for a loaded server's list page, short enough that a
/// stalled connection leaves most of the budget to try again.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The end of an operation's time budget.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    start: Instant,
    end: Instant,
}

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        let start = Instant::now();
        Self {
            start,
            // Durations are at most a year (settings::parse_duration); checked all the same,
            // as an overflow here would be a panic.
            end: start.checked_add(budget).unwrap_or(start),
        }
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.end
    }

    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    pub fn spent(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Exponential delays with jitter from `min` to at most `max`, without end: the budget, not a
/// count, ends the tries.
pub fn backoff(min: Duration, max: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(min)
        .with_max_delay(max)
        .without_max_times()
        .build()
}
