//! The background worker: sleeps on its latch, wakes on ingest (or after
//! `stripe_sync.poll_interval`), drains due events in bounded rounds of
//! batches, one transaction per batch, with apply helpers beside it while a
//! backlog lasts (helpers.rs). After a short batch it lets new events gather
//! for `stripe_sync.batch_wait` before the next claim. Between rounds it runs
//! provisioning, handlers and alerts, and starts the job workers that re-read
//! objects and catch up (jobs.rs).

use crate::{config, drain, helpers, queue, shmem, subxact};
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, DynamicBackgroundWorker, SignalWakeFlags,
};
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// Name shown as `backend_type` in pg_stat_activity.
pub const WORKER_TYPE: &str = "stripe_sync worker";

pub fn register() {
    BackgroundWorkerBuilder::new(WORKER_TYPE)
        .set_type(WORKER_TYPE)
        .set_library("stripe_sync")
        .set_function("stripe_sync_worker_main")
        .enable_spi_access()
        // pgrx's default is never to restart; a crashed worker comes back after this.
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// Where the worker stands after a round.
enum Round {
    /// Nothing more is due: sleep until woken.
    Idle,
    /// More is due: go again at once.
    Backlog,
    /// The extension is absent, or a round failed: sleep, then look again.
    Wait,
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn stripe_sync_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(Some(&config::worker_database()), None);
    crate::security::pin_session();
    unsafe { pg_sys::pgstat_report_appname(c"stripe_sync worker".as_ptr()) };
    // A SIGHUP sent before the handler existed was lost: read the files once now.
    reload_config();
    shmem::worker_started();
    log!("stripe_sync worker started on database \"{}\"", config::worker_database());

    let mut round = Round::Backlog;
    let mut failures: u32 = 0;
    let mut extension_seen = false;
    let mut last_purge: Option<Instant> = None;
    let mut last_refresh: Option<Instant> = None;
    let mut last_catch_up_check: Option<Instant> = None;
    // The job workers this worker started (re-reads, catch-up), while they run.
    let mut refresher: Option<DynamicBackgroundWorker> = None;
    let mut catcher: Option<DynamicBackgroundWorker> = None;
    let mut helpers = helpers::Helpers::default();
    // After a short batch: when the next one may be claimed.
    let mut next_claim: Option<Instant> = None;
    loop {
        let sleep = match round {
            Round::Backlog => Duration::ZERO,
            Round::Idle => config::poll_interval(),
            Round::Wait => {
                config::poll_interval().max(Duration::from_millis(500)) * (1 << failures.min(5))
            }
        };
        if !BackgroundWorker::wait_latch(Some(sleep)) {
            break; // SIGTERM or postmaster death
        }
        if let Some(at) = next_claim.take()
            && !sleep_until(at)
        {
            break;
        }
        if BackgroundWorker::sighup_received() {
            reload_config();
        }
        shmem::heartbeat();
        if extension_seen && last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
            last_purge = Some(Instant::now());
            purge();
        }
        let provisioning_backlog = extension_seen && provision_round();
        if extension_seen && last_refresh.is_none_or(|t| t.elapsed() >= REFRESH_EVERY) {
            last_refresh = Some(Instant::now());
            refresh_round(&mut refresher);
        }
        if extension_seen && last_catch_up_check.is_none_or(|t| t.elapsed() >= CATCH_UP_CHECK_EVERY)
        {
            last_catch_up_check = Some(Instant::now());
            catch_up_round(&mut catcher);
        }
        let known = extension_seen;
        let share = helpers.worker_share();
        let started = Instant::now();
        round = match BackgroundWorker::transaction(|| subxact::run(|| drain_round(known, share))) {
            Ok((r, claimed)) => {
                failures = 0;
                if matches!(r, Round::Idle) && claimed > 0 {
                    next_claim = Some(started + config::batch_wait());
                }
                // Its own share done while helpers run: Idle, until a helper's
                // exit or new events wake it (see helpers.rs).
                if matches!(r, Round::Backlog) && share.is_none() {
                    // A full batch: more processes may drain beside this one.
                    helpers.top_up();
                }
                extension_seen = !matches!(r, Round::Wait);
                // Handlers and alerts of what was just committed; their own
                // backlogs keep the loop going like an event backlog.
                let reactions_backlog = extension_seen && reactions_round();
                if matches!(r, Round::Idle) && (provisioning_backlog || reactions_backlog) {
                    Round::Backlog
                } else {
                    r
                }
            }
            Err(f) => {
                failures += 1;
                extension_seen = false;
                warning!("stripe_sync worker: a round failed (SQLSTATE {}), retrying", f.sqlstate);
                Round::Wait
            }
        };
    }
    shmem::worker_stopped();
}

/// One round is one batch in its own transaction; the loop goes again at once
/// while a backlog remains, looking at its signals between batches. Until the
/// extension has been seen in the database (at this library's version) the
/// worker only looks for it. Returns the events claimed too.
fn drain_round(extension_seen: bool, share: queue::Share) -> (Round, usize) {
    if !extension_seen && !extension_ready() {
        return (Round::Wait, 0);
    }
    let limit = config::batch_size();
    let claimed = drain::run_own_batch(limit, share).claimed;
    (if claimed == limit { Round::Backlog } else { Round::Idle }, claimed)
}

/// Sleeps until `at` whatever sets the latch meanwhile: deliveries that wake
/// the worker during a `stripe_sync.batch_wait` are left to gather into the
/// next batch. A batch of 20 events costs far less than 20 batches of one
/// (each claims, runs every object type's statement and commits), which
/// leaves the CPUs to ingest while a steady stream arrives. False on SIGTERM
/// or postmaster death.
fn sleep_until(at: Instant) -> bool {
    loop {
        let now = Instant::now();
        if now >= at {
            return true;
        }
        if !BackgroundWorker::wait_latch(Some(at - now)) {
            return false;
        }
    }
}

/// Provisioning jobs handled per round, between event batches.
const PROVISION_PER_ROUND: i64 = 20;

/// Runs due provisioning jobs; each job's Stripe call happens outside any
/// transaction (provision.rs). A failure is logged and retried next round.
/// True when more jobs may be due.
fn provision_round() -> bool {
    match subxact::catch_between_transactions(|| crate::provision::run_due(PROVISION_PER_ROUND)) {
        Ok(n) => n as i64 == PROVISION_PER_ROUND,
        Err(f) => {
            warning!("stripe_sync worker: provisioning round failed (SQLSTATE {})", f.sqlstate);
            false
        }
    }
}

/// How often the worker looks for objects to re-read from the API (refresh
/// requests, partial child lists).
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// With a key, starts a job worker that re-reads what needs it, at the pace
/// the shared request budget allows, until nothing is left (unless one still
/// runs): the apply goes on meanwhile. Without a key the tie rule stands and
/// the requests are dropped.
fn refresh_round(refresher: &mut Option<DynamicBackgroundWorker>) {
    if refresher.as_ref().is_some_and(crate::launch::running) {
        return;
    }
    *refresher = None;
    let outcome = subxact::catch_between_transactions(|| {
        if !config::api_key_configured() {
            crate::refresh::drop_refresh_requests();
            false
        } else {
            BackgroundWorker::transaction(crate::refresh::any_wanted)
        }
    });
    match outcome {
        Ok(true) => *refresher = crate::jobs::start_background(crate::jobs::Background::Refresh),
        Ok(false) => {}
        Err(f) => {
            warning!(
                "stripe_sync worker: looking for objects to re-read failed (SQLSTATE {})",
                f.sqlstate
            )
        }
    }
}

/// How often the worker looks whether its own catch-up is due.
const CATCH_UP_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Starts a catch-up of every known account when stripe_sync.catch_up_interval
/// is set, a key is configured, and no catch-up (the worker's, or one called
/// from SQL or pg_cron) started within the interval or still runs.
fn catch_up_round(catcher: &mut Option<DynamicBackgroundWorker>) {
    let Some(interval) = config::catch_up_interval() else { return };
    if !config::api_key_configured() || catcher.as_ref().is_some_and(crate::launch::running) {
        return;
    }
    *catcher = None;
    match BackgroundWorker::transaction(|| subxact::run(|| crate::catch_up::due(interval))) {
        Ok(true) => *catcher = crate::jobs::start_background(crate::jobs::Background::CatchUpAll),
        Ok(false) => {}
        Err(f) => {
            warning!("stripe_sync worker: checking for catch-up failed (SQLSTATE {})", f.sqlstate)
        }
    }
}

/// How often the worker deletes events past stripe_sync.event_retention.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

fn purge() {
    let outcome =
        BackgroundWorker::transaction(|| subxact::run(|| queue::purge(config::event_retention())));
    match outcome {
        Ok(n) if n > 0 => {
            log!("stripe_sync worker: purged {n} events past stripe_sync.event_retention")
        }
        Ok(_) => {}
        Err(f) => warning!("stripe_sync worker: purging events failed (SQLSTATE {})", f.sqlstate),
    }
}

/// Whether the extension is installed at this library's version; an older
/// schema is reported once per version seen, and waited for.
fn extension_ready() -> bool {
    static REPORTED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    match crate::version::installed() {
        Some(v) if v == crate::version::LIBRARY => true,
        Some(v) => {
            let mut reported = REPORTED.lock().unwrap_or_else(|e| e.into_inner());
            if reported.as_deref() != Some(v.as_str()) {
                warning!(
                    "stripe_sync worker: the schema is version {v} but the library is {}; waiting for ALTER EXTENSION stripe_sync UPDATE",
                    crate::version::LIBRARY
                );
                *reported = Some(v);
            }
            false
        }
        None => false,
    }
}

/// Handler runs called per round, between event batches.
const HANDLER_RUNS_PER_ROUND: i64 = 200;

/// Calls due handlers (in a transaction of their own, after the batch that
/// queued them committed) and posts due Slack alerts (with no transaction
/// open). A failure is logged and retried next round. True when more may be due.
fn reactions_round() -> bool {
    let handlers = BackgroundWorker::transaction(|| {
        subxact::run(|| crate::handlers::run_due(HANDLER_RUNS_PER_ROUND))
    });
    let handlers_backlog = match handlers {
        Ok(n) => n as i64 == HANDLER_RUNS_PER_ROUND,
        Err(f) => {
            warning!("stripe_sync worker: calling handlers failed (SQLSTATE {})", f.sqlstate);
            false
        }
    };
    if let Err(f) = subxact::catch_between_transactions(crate::alerts::run_due) {
        warning!("stripe_sync worker: sending Slack alerts failed (SQLSTATE {})", f.sqlstate);
    }
    handlers_backlog
}

fn reload_config() {
    unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
}
