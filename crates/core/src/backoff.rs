//! Retry delays: capped exponential backoff with full jitter, and the
//! server's `Retry-After` honoured when it asks for longer. Pure: the caller
//! supplies the randomness, so tests are exact.

use std::time::Duration;

/// A backoff policy: the first retry waits about `base`, each further one twice
/// as long, never more than `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// Delay before retry number `attempt` (1 = the first retry). `unit` is a
    /// uniform random number in [0, 1): the delay is drawn from
    /// [ceiling/2, ceiling], where ceiling = min(cap, base * 2^(attempt-1)), so
    /// retries spread out but never collapse to zero.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let ceiling = self.base.saturating_mul(1u32 << exp).min(self.cap);
        let unit = unit.clamp(0.0, 1.0);
        ceiling.mul_f64(0.5 + 0.5 * unit)
    }

    /// Like [`Backoff::delay`], but never shorter than what the server asked
    /// for in `Retry-After` (itself capped, so a hostile value cannot stall us).
    pub fn delay_with_retry_after(
        &self,
        attempt: u32,
        unit: f64,
        retry_after: Option<Duration>,
    ) -> Duration {
        let own = self.delay(attempt, unit);
        match retry_after {
            Some(asked) => own.max(asked.min(self.cap)),
            None => own,
        }
    }
}

/// A uniform number in [0, 1) for jitter. std's RandomState is seeded from
/// the OS per process (and varied per call), which is all jitter needs.
pub fn random_unit() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(0u8) >> 11) as f64 / (1u64 << 53) as f64
}

/// Parses a `Retry-After` header given in seconds (Stripe sends seconds; an
/// HTTP date is not supported and reads as absent).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(60) };

    #[test]
    fn grows_exponentially_within_half_and_full_ceiling() {
        for (attempt, ceiling) in [(1, 1), (2, 2), (3, 4), (4, 8), (7, 60), (40, 60)] {
            let c = Duration::from_secs(ceiling);
            assert_eq!(B.delay(attempt, 0.0), c / 2, "attempt {attempt}");
            assert_eq!(B.delay(attempt, 1.0), c, "attempt {attempt}");
            let mid = B.delay(attempt, 0.5);
            assert!(mid > c / 2 && mid < c);
        }
    }

    #[test]
    fn attempt_zero_behaves_like_the_first() {
        assert_eq!(B.delay(0, 1.0), Duration::from_secs(1));
    }

    #[test]
    fn out_of_range_randomness_is_clamped() {
        assert_eq!(B.delay(3, 7.0), Duration::from_secs(4));
        assert_eq!(B.delay(3, -1.0), Duration::from_secs(2));
    }

    #[test]
    fn retry_after_is_honoured_but_capped() {
        let asked = Some(Duration::from_secs(30));
        assert_eq!(B.delay_with_retry_after(1, 0.0, asked), Duration::from_secs(30));
        assert_eq!(B.delay_with_retry_after(1, 0.0, Some(Duration::from_secs(9999))), B.cap);
        assert_eq!(
            B.delay_with_retry_after(4, 1.0, Some(Duration::from_millis(1))),
            Duration::from_secs(8)
        );
    }

    #[test]
    fn random_units_are_in_range_and_vary() {
        let draws: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(draws.iter().any(|u| *u != draws[0]));
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("NaN"), None);
    }
}
