//! The shared request budget as arithmetic: a generic cell rate algorithm
//! (GCRA, a token bucket kept as one number). The extension keeps the number
//! in shared memory so every backend and worker draws from one budget.

/// Given the theoretical arrival time `tat` (µs) currently stored, the time
/// `now` (µs), the spacing between requests `interval` (µs, 1e6 / rate) and a
/// `burst` of requests allowed at once, returns the new `tat` to store and how
/// long this request must wait before it goes (µs).
pub fn reserve(tat: i64, now: i64, interval: i64, burst: i64) -> (i64, i64) {
    // An idle bucket is full, never fuller: the arrival time is at least now.
    let tat = tat.max(now);
    let tolerance = interval.saturating_mul(burst.max(1) - 1);
    let wait = (tat - tolerance - now).max(0);
    (tat.saturating_add(interval), wait)
}

/// The spacing in µs for `rate` requests per second (at least 1 µs).
pub fn interval_for(rate_per_second: f64) -> i64 {
    if rate_per_second <= 0.0 { i64::MAX / 4 } else { ((1e6 / rate_per_second) as i64).max(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates `n` requests arriving at once at time 0; returns their waits.
    fn waits(n: usize, interval: i64, burst: i64) -> Vec<i64> {
        let mut tat = 0;
        (0..n)
            .map(|_| {
                let (t, w) = reserve(tat, 0, interval, burst);
                tat = t;
                w
            })
            .collect()
    }

    #[test]
    fn a_burst_goes_at_once_then_requests_are_spaced() {
        assert_eq!(waits(6, 100, 3), vec![0, 0, 0, 100, 200, 300]);
        assert_eq!(waits(3, 100, 1), vec![0, 100, 200]);
    }

    #[test]
    fn an_idle_bucket_refills_up_to_the_burst_only() {
        let (tat, _) = reserve(0, 0, 100, 2);
        let (tat, _) = reserve(tat, 0, 100, 2);
        // Long idle: the next three see a full bucket of two, then spacing.
        let now = 1_000_000;
        let (tat, w1) = reserve(tat, now, 100, 2);
        let (tat, w2) = reserve(tat, now, 100, 2);
        let (_, w3) = reserve(tat, now, 100, 2);
        assert_eq!((w1, w2, w3), (0, 0, 100));
    }

    #[test]
    fn sustained_rate_matches_the_interval() {
        let interval = interval_for(25.0);
        assert_eq!(interval, 40_000);
        let w = waits(101, interval, 5);
        assert_eq!(w[100], 96 * interval);
        assert_eq!(interval_for(0.0), i64::MAX / 4);
    }
}
