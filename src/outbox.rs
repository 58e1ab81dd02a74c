//! What becomes of a failed attempt, for every outbox the worker works
//! through (events the apply failed on, handler runs, provisioning jobs,
//! Slack alerts): one policy (`stripe_sync_core::retry`, with
//! `stripe_sync.max_attempts` and `stripe_sync.retry_base_delay`), decided
//! here and recorded by each table's `*_failed.sql`.

use crate::config;
use std::time::Duration;
use stripe_sync_core::backoff::{Backoff, random_unit};
use stripe_sync_core::retry::{DEFAULT_CAP, Failure, Next, Policy};

/// The policy as configured now.
pub fn policy() -> Policy {
    Policy {
        backoff: Backoff { base: config::retry_base_delay(), cap: DEFAULT_CAP },
        max_attempts: config::max_attempts(),
    }
}

/// After attempt `attempt` (1 = the first) failed as `failure`.
pub fn next(attempt: i32, failure: Failure) -> Next {
    policy().after(attempt, failure, random_unit(), None)
}

/// As [`next`], with delays capped at `cap` and the server's `Retry-After` honoured.
pub fn next_within(
    attempt: i32,
    failure: Failure,
    cap: Duration,
    retry_after: Option<Duration>,
) -> Next {
    policy().capped(cap).after(attempt, failure, random_unit(), retry_after)
}

/// What a warning says of the item's future.
pub fn what_next(next: &Next) -> &'static str {
    match next {
        Next::GiveUp => "gave up on",
        Next::RetryIn(_) => "will retry",
    }
}
