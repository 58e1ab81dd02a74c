//! Apply helpers: while a backlog lasts, the worker starts up to
//! `stripe_sync.apply_workers - 1` extra processes (`backend_type
//! 'stripe_sync apply'`) that drain the same queue beside it. The queue is cut
//! into shares by ranges of a hash of the object id, which the pending index
//! carries (claim_batch.sql, stripe_sync_core::shares): each helper
//! claims batches of its own share only (FOR UPDATE SKIP LOCKED), the worker
//! share 0, so two appliers never wait on each other's rows. Each applies
//! with the worker's code ([`drain::run_own_batch`]), one transaction per batch,
//! and exits as soon as a batch comes back short. Once its share is done the
//! worker waits (a helper's exit wakes it) instead of claiming from the
//! others: events of one object in two appliers' batches at once make each
//! wait for the other's commit, batch after batch. When the helpers are gone
//! it claims from every share again, picking up whatever they left.
//!
//! Order still holds with several appliers: an upsert keeps a row's newer
//! state, and it is checked against the row's latest committed version (the
//! row lock of ON CONFLICT DO UPDATE), whichever process applied it. A batch
//! that deadlocks with another is rolled back and retried event by event, as
//! any failed batch is.

use crate::queue::Share;
use crate::{config, drain, launch, subxact};
use pgrx::bgworkers::{BackgroundWorker, DynamicBackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;
use stripe_sync_core::job::Job;

/// The helpers the worker started and that may still run, with the share
/// of the queue each one drains (the worker's is share 0).
#[derive(Default)]
pub struct Helpers {
    running: Vec<(i32, DynamicBackgroundWorker)>,
    /// Appliers the shares were cut for (apply_workers when they started).
    of: i32,
    /// The last start failed for want of a worker slot (warned once).
    starved: bool,
}

impl Helpers {
    fn prune(&mut self) {
        self.running.retain(|(_, h)| launch::running(h));
    }

    /// What the worker claims next: its own share while helpers drain
    /// theirs, else everything.
    pub fn worker_share(&mut self) -> Share {
        self.prune();
        (!self.running.is_empty()).then_some((0, self.of))
    }

    /// Called by the worker when a batch came back full: starts a helper for
    /// every share 1..apply_workers-1 that has none. Without a free background
    /// worker slot the worker drains alone, with one warning.
    pub fn top_up(&mut self) {
        self.prune();
        let of = config::apply_workers() as i32;
        if self.running.is_empty() {
            self.of = of;
        }
        if of != self.of {
            return; // resized: the new count applies to the next backlog
        }
        for slot in 1..of {
            if self.running.iter().any(|(s, _)| *s == slot) {
                continue;
            }
            match launch::launch(Job::Apply { share: slot, of }) {
                Some(h) => {
                    self.running.push((slot, h));
                    self.starved = false;
                }
                None => {
                    if !self.starved {
                        warning!(
                            "stripe_sync worker: could not start an apply helper; raise max_worker_processes or lower stripe_sync.apply_workers"
                        );
                    }
                    self.starved = true;
                    break;
                }
            }
        }
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn stripe_sync_apply_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let db = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    crate::security::pin_session();
    unsafe { pg_sys::pgstat_report_appname(c"stripe_sync apply".as_ptr()) };
    let share = match launch::spec().map(|s| s.job) {
        Ok(Job::Apply { share, of }) => Some((share, of)),
        other => {
            warning!("stripe_sync apply helper: not an apply helper's job: {other:?}");
            return;
        }
    };
    let limit = config::batch_size();
    let (mut batches, mut events) = (0usize, 0usize);
    while !BackgroundWorker::sigterm_received() {
        match BackgroundWorker::transaction(|| subxact::run(|| drain::run_own_batch(limit, share)))
        {
            Ok(outcome) => {
                batches += 1;
                events += outcome.claimed;
                if outcome.claimed < limit {
                    break;
                }
            }
            Err(f) => {
                warning!(
                    "stripe_sync apply helper: a batch failed (SQLSTATE {}); exiting",
                    f.sqlstate
                );
                break;
            }
        }
    }
    log!("stripe_sync apply helper: done after {batches} batches, {events} events");
}
