//! One batch: claim due events, apply them set-based, mark them done, all in
//! one subtransaction. If the batch fails as a whole, its events are claimed
//! again and each is retried alone in its own subtransaction, so a poison
//! event is marked failed and the rest still apply. The worker and its
//! helpers call [`run_own_batch`], `process_pending()` calls [`run_batch`] in
//! the caller's transaction.

use crate::{apply, config, notify, outbox, queue, subxact};
use pgrx::prelude::*;
use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use stripe_sync_core::retry::Failure;

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events claimed (applied, skipped or failed).
    pub claimed: usize,
    /// Events whose apply failed this time (retried later or left failed).
    pub failed: usize,
}

/// One batch in a transaction of the worker's (or an apply helper's) own,
/// whose commit does not wait for its WAL to reach the disk
/// (`synchronous_commit = off`, for this transaction only). The events were
/// committed durably by `ingest_event`, and a commit is lost only with every
/// commit after it, so a crash can undo only the newest batches (by default
/// what the last 0.6 s, three `wal_writer_delay`s, applied): their events are
/// pending again and applied anew, as if the batches had never run. What
/// follows a batch commits durably, and that flush covers the batch: a
/// handler's run (with its effects), and the claim of a Slack alert before it
/// is posted. A `LISTEN`er may hear of a batch that a crash then undoes; it
/// hears of its events again when they are applied anew.
pub fn run_own_batch(limit: usize, share: queue::Share) -> BatchOutcome {
    Spi::run("SET LOCAL synchronous_commit = off").expect("set synchronous_commit");
    batch_settings();
    run_batch(limit, share)
}

/// Turns sequential scans off until the transaction ends (`enable_seqscan`):
/// each statement of a batch reaches at most a batch of rows by key, so a
/// scan of a whole table is never the right plan, but the planner picks it
/// while a table is empty or has never been analyzed (a fresh install, after
/// a TRUNCATE), and the kept plan (plans.rs) would then go on scanning the
/// table as it grows, until autovacuum analyzes it: several times the CPU per
/// event while a busy ingest fills an emptied queue. A statement with no
/// index to use still scans.
///
/// JIT is off for the batch too (`jit`, default on): with sequential scans
/// off, a plan that can only scan (the handlers join of mark_done, a small
/// table with no index to use) is costed at 10^10, far above
/// `jit_above_cost`, and every batch then compiled and optimised JIT code for
/// statements that touch a few thousand rows by key: at PostgreSQL's
/// defaults the apply ran at a third of its speed and a lone event took
/// 170 ms. JIT pays off only for long analytical queries, never for these.
/// pgrx-tests/test_defaults.py fails if a batch JIT-compiles anything.
fn batch_settings() {
    Spi::run("SET LOCAL enable_seqscan = off").expect("set enable_seqscan");
    Spi::run("SET LOCAL jit = off").expect("set jit");
}

/// The claim is made in the subtransaction that marks the batch, not before
/// it: a row locked by one (sub)transaction and then updated by another gets a
/// MultiXact as its xmax, and an index scan can never tell that such a row
/// version is dead. The claim's scan of the pending index would then visit
/// every event applied since the last VACUUM, claim after claim (measured: a
/// millisecond and more per claim once a few tens of thousands had been
/// applied). Locked and updated by the same subtransaction, a dead entry is
/// marked dead in the index the first time a scan meets it.
pub fn run_batch(limit: usize, share: queue::Share) -> BatchOutcome {
    let mirrored = apply::mirrored_objects();
    let alert_types = config::alert_events();
    // The claim outlives the subtransaction's rollback, for the retries.
    let claimed = RefCell::new(Vec::new());
    let whole = subxact::run(AssertUnwindSafe(|| {
        *claimed.borrow_mut() = queue::claim(limit, share);
        let batch = claimed.borrow();
        if batch.is_empty() {
            return Vec::new();
        }
        let all: Vec<&queue::Claimed> = batch.iter().collect();
        apply_and_mark(&all, &mirrored, &alert_types)
    }));
    let claimed = claimed.into_inner();
    match whole {
        Ok(applied) => {
            notify::batch_applied(&applied);
            return BatchOutcome { claimed: claimed.len(), failed: 0 };
        }
        // The claim itself failed: nothing to isolate, the caller sees the error.
        Err(f) if claimed.is_empty() => {
            crate::errors::reraise(&f.sqlstate, f.message);
        }
        Err(_) => {}
    }
    // Isolate: every event alone. Only the bad ones fail.
    let ids: Vec<&str> = claimed.iter().map(|e| e.id.as_str()).collect();
    let mut failed = 0;
    let mut applied = Vec::with_capacity(claimed.len());
    for event in &queue::reclaim(&ids) {
        match subxact::run(|| apply_and_mark(&[event], &mirrored, &alert_types)) {
            Ok(done) => applied.extend(done),
            Err(f) => {
                failed += 1;
                record_failure(event, &f, alert_types.iter().any(|t| t == "dead_letter"));
            }
        }
    }
    notify::batch_applied(&applied);
    BatchOutcome { claimed: claimed.len(), failed }
}

fn apply_and_mark(
    events: &[&queue::Claimed],
    mirrored: &[&str],
    alert_types: &[String],
) -> Vec<queue::Applied> {
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    // A thin event's object is read from the API: it goes to no statement here.
    let types: Vec<Option<&str>> =
        events.iter().map(|e| e.object_type.as_deref().filter(|_| !e.thin)).collect();
    apply::apply_events(&ids, &types);
    let thin: Vec<&str> = events.iter().filter(|e| e.thin).map(|e| e.id.as_str()).collect();
    if !thin.is_empty() {
        apply::request_objects(&thin);
    }
    queue::mark_done(&ids, mirrored, alert_types)
}

fn record_failure(event: &queue::Claimed, failure: &subxact::Failure, alert_dead_letter: bool) {
    let next = outbox::next(event.attempts, Failure::Retryable);
    let error = format!("{} (SQLSTATE {})", failure.message, failure.sqlstate);
    queue::mark_failed(&event.id, &error, next, alert_dead_letter);
    // The message may quote object data: it goes to the table, not to the log.
    pgrx::warning!(
        "stripe_sync: {} event {} after attempt {} of {} (SQLSTATE {}); see stripe_sync.events.last_error",
        outbox::what_next(&next),
        event.id,
        event.attempts,
        config::max_attempts(),
        failure.sqlstate
    );
}

/// Runs batches in the current transaction until none is due or `max_events`
/// have been handled; returns how many were.
pub fn run_in_session(max_events: Option<usize>) -> usize {
    // With the worker's batch settings; the caller's are back for the rest
    // of its transaction (an error aborts the transaction, which undoes the
    // SET LOCALs too).
    let (seqscan, jit) = Spi::get_two::<String, String>(
        "SELECT pg_catalog.current_setting('enable_seqscan'), pg_catalog.current_setting('jit')",
    )
    .expect("read enable_seqscan and jit");
    batch_settings();
    let handled = batches_in_session(max_events);
    Spi::run_with_args(
        "SELECT pg_catalog.set_config('enable_seqscan', $1, true), pg_catalog.set_config('jit', $2, true)",
        &[seqscan.as_deref().unwrap_or("on").into(), jit.as_deref().unwrap_or("on").into()],
    )
    .expect("restore enable_seqscan and jit");
    handled
}

fn batches_in_session(max_events: Option<usize>) -> usize {
    let mut handled = 0;
    loop {
        let room = max_events.map_or(usize::MAX, |m| m - handled);
        let limit = config::batch_size().min(room);
        if limit == 0 {
            return handled;
        }
        let outcome = run_batch(limit, None);
        handled += outcome.claimed;
        if outcome.claimed < limit {
            return handled;
        }
        check_for_interrupts!();
    }
}
