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
/// last completed run started listing), now, and how long processed events
/// are kept (`stripe_sync.event_retention`, seconds): the watermark less the
/// overlap, or the whole window for a first run or one whose watermark has
/// left the window. The window is Stripe's 30 days, or the retention if
/// shorter: an event older than that may have been applied and purged, and
/// queued again it would run its handlers and alerts a second time. The
/// second value says whether events may have been lost (the watermark is
/// older than the window).
pub fn listing_start(watermark: Option<i64>, now: i64, retention: i64) -> (i64, bool) {
    let window_start = now - EVENT_WINDOW_SECONDS.min(retention.max(OVERLAP_SECONDS));
    match watermark {
        Some(w) if w - OVERLAP_SECONDS >= window_start => (w - OVERLAP_SECONDS, false),
        Some(_) => (window_start, true),
        None => (window_start, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const MONTH: i64 = EVENT_WINDOW_SECONDS;

    #[test]
    fn a_first_run_lists_the_whole_window() {
        assert_eq!(listing_start(None, NOW, MONTH), (NOW - MONTH, false));
        assert_eq!(listing_start(None, NOW, 90 * 86_400), (NOW - MONTH, false));
    }

    #[test]
    fn a_first_run_goes_no_further_back_than_events_are_kept() {
        assert_eq!(listing_start(None, NOW, 7 * 86_400), (NOW - 7 * 86_400, false));
        let old = NOW - 10 * 86_400;
        assert_eq!(listing_start(Some(old), NOW, 7 * 86_400), (NOW - 7 * 86_400, true));
    }

    #[test]
    fn a_run_starts_before_the_last_one_began() {
        let last = NOW - 300;
        assert_eq!(listing_start(Some(last), NOW, MONTH), (last - OVERLAP_SECONDS, false));
    }

    #[test]
    fn a_watermark_beyond_the_window_lists_the_window_and_says_so() {
        let old = NOW - MONTH - 10;
        assert_eq!(listing_start(Some(old), NOW, MONTH), (NOW - MONTH, true));
    }
}
