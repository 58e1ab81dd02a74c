//! Where a catch-up of /v1/events starts listing. Its watermark is where the
//! last completed catch-up of the account started listing (Unix seconds);
//! each run lists again a little before it, and never further back than
//! Stripe keeps events.

/// Stripe keeps events for 30 days.
pub const EVENT_WINDOW_SECONDS: i64 = 30 * 24 * 3600;

/// A run lists again this much before the previous run's start: events that
/// reach Stripe's list a little after their `created` second, and clocks
/// apart by less than this, are still found. Duplicates are stored once.
pub const OVERLAP_SECONDS: i64 = 120;

/// Where a catch-up lists from, given its watermark (Unix seconds where the
/// last completed run started listing) and now: the watermark less the
/// overlap, or the whole window for a first run or one whose watermark has
/// left the window. The second value says whether events may have been lost
/// (the watermark is older than the window).
pub fn listing_start(watermark: Option<i64>, now: i64) -> (i64, bool) {
    let window_start = now - EVENT_WINDOW_SECONDS;
    match watermark {
        Some(w) if w - OVERLAP_SECONDS >= window_start => (w - OVERLAP_SECONDS, false),
        Some(_) => (window_start, true),
        None => (window_start, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_run_lists_the_whole_window() {
        let now = 1_800_000_000;
        assert_eq!(listing_start(None, now), (now - EVENT_WINDOW_SECONDS, false));
    }

    #[test]
    fn a_run_starts_before_the_last_one_began() {
        let now = 1_800_000_000;
        let last = now - 300;
        assert_eq!(listing_start(Some(last), now), (last - OVERLAP_SECONDS, false));
    }

    #[test]
    fn a_watermark_beyond_the_window_lists_the_window_and_says_so() {
        let now = 1_800_000_000;
        let old = now - EVENT_WINDOW_SECONDS - 10;
        assert_eq!(listing_start(Some(old), now), (now - EVENT_WINDOW_SECONDS, true));
    }
}
