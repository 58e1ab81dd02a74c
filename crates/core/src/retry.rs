//! The one retry policy of the extension's outboxes: events the apply failed
//! on, handler runs, provisioning jobs and Slack alerts. Each failed attempt
//! either waits (capped exponential backoff with jitter, `Retry-After`
//! honoured) or ends the item `failed`; the tables only record the decision
//! (sql/queries/*_failed.sql).

use crate::backoff::Backoff;
use std::time::Duration;

/// Retry delays never grow past this (alerts use a shorter cap of their own).
pub const DEFAULT_CAP: Duration = Duration::from_secs(3600);

/// How often, and how far apart, failed attempts are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub backoff: Backoff,
    /// Attempts (the first included) before an item ends failed.
    pub max_attempts: i32,
}

/// Whether an attempt that failed may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Tried again until it has used `max_attempts` (the default).
    Retryable,
    /// Never tried again: what failed will fail again (a refused request).
    Permanent,
    /// Tried again however many attempts it has used: what failed is only
    /// delayed (a Slack message that could not be delivered for now).
    Transient,
}

/// What becomes of the item after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Pending again, due after this long.
    RetryIn(Duration),
    /// Failed for good.
    GiveUp,
}

impl Next {
    /// The status the item is left with: `pending` or `failed`.
    pub fn status(&self) -> &'static str {
        match self {
            Next::RetryIn(_) => "pending",
            Next::GiveUp => "failed",
        }
    }

    /// Milliseconds until the item is due again (0 when it gave up).
    pub fn delay_ms(&self) -> f64 {
        match self {
            Next::RetryIn(d) => d.as_millis() as f64,
            Next::GiveUp => 0.0,
        }
    }
}

impl Policy {
    /// After attempt number `attempt` (1 = the first) failed as `failure`;
    /// `unit` is the jitter's random number in [0, 1), `retry_after` what the
    /// server asked for.
    pub fn after(
        &self,
        attempt: i32,
        failure: Failure,
        unit: f64,
        retry_after: Option<Duration>,
    ) -> Next {
        let exhausted = attempt >= self.max_attempts;
        match failure {
            Failure::Permanent => Next::GiveUp,
            Failure::Retryable if exhausted => Next::GiveUp,
            _ => Next::RetryIn(self.backoff.delay_with_retry_after(
                attempt.max(1) as u32,
                unit,
                retry_after,
            )),
        }
    }

    /// The same policy with another cap on its delays.
    pub fn capped(self, cap: Duration) -> Policy {
        Policy { backoff: Backoff { cap, ..self.backoff }, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        backoff: Backoff { base: Duration::from_secs(10), cap: DEFAULT_CAP },
        max_attempts: 3,
    };

    #[test]
    fn retryable_failures_wait_longer_each_time_then_give_up() {
        assert_eq!(
            P.after(1, Failure::Retryable, 1.0, None),
            Next::RetryIn(Duration::from_secs(10))
        );
        assert_eq!(
            P.after(2, Failure::Retryable, 1.0, None),
            Next::RetryIn(Duration::from_secs(20))
        );
        assert_eq!(P.after(3, Failure::Retryable, 1.0, None), Next::GiveUp);
        assert_eq!(P.after(9, Failure::Retryable, 0.0, None), Next::GiveUp);
        assert_eq!(Next::GiveUp.status(), "failed");
        assert_eq!(Next::RetryIn(Duration::from_millis(1500)).delay_ms(), 1500.0);
        assert_eq!(Next::RetryIn(Duration::ZERO).status(), "pending");
    }

    #[test]
    fn permanent_failures_give_up_at_once_and_transient_ones_never() {
        assert_eq!(P.after(1, Failure::Permanent, 0.5, None), Next::GiveUp);
        let late = P.after(50, Failure::Transient, 1.0, None);
        assert_eq!(late, Next::RetryIn(DEFAULT_CAP));
        let capped = P.capped(Duration::from_secs(600));
        assert_eq!(
            capped.after(50, Failure::Transient, 1.0, None),
            Next::RetryIn(Duration::from_secs(600))
        );
    }

    #[test]
    fn retry_after_is_honoured() {
        let asked = Some(Duration::from_secs(120));
        assert_eq!(
            P.after(1, Failure::Transient, 0.0, asked),
            Next::RetryIn(Duration::from_secs(120))
        );
        assert_eq!(
            P.after(0, Failure::Retryable, 1.0, None),
            Next::RetryIn(Duration::from_secs(10))
        );
    }
}
