//! Jobs: a backfill, catch-up or verify runs in a dynamic background worker
//! that commits page by page (so no transaction stays open for the whole run,
//! and an interrupted run resumes), while the SQL call that started it waits,
//! prints NOTICE progress from `stripe_sync.sync_runs`, and returns the
//! count. Cancelling the call (pg_cancel_backend, statement_timeout)
//! terminates the job; what it committed stays, and the next call resumes.
//! The worker starts jobs with no caller too (its catch-up, its re-reads).
//! What a job is to do travels in `bgw_extra`, written and read by
//! `stripe_sync_core::job`.

use crate::launch::{launch, stopped};
use crate::runs::{self, Run};
use crate::{backfill, catch_up, stripe, verify};
use pgrx::bgworkers::{BackgroundWorker, DynamicBackgroundWorker};
use pgrx::prelude::*;
use std::time::Duration;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::job::Job;
use stripe_sync_core::objects;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Backfill,
    CatchUp,
    Verify { repair: bool },
}

/// Jobs the worker starts by itself, with no session following them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// A catch-up of every known account (stripe_sync.catch_up_interval).
    CatchUpAll,
    /// Re-reads of objects the apply could not settle (refresh.rs), until none is left.
    Refresh,
}

/// Starts a background job (from the worker). None when no worker slot is free.
pub fn start_background(job: Background) -> Option<DynamicBackgroundWorker> {
    launch(match job {
        Background::CatchUpAll => Job::CatchUpAll,
        Background::Refresh => Job::Refresh,
    })
}

/// Starts a job and waits for it; returns the objects (or events) it applied.
/// Errors of the job are raised here.
pub fn run_and_wait(
    kind: Kind,
    object: &str,
    created_after: Option<i64>,
    account: Option<&str>,
) -> i64 {
    run_and_wait_for_run(kind, object, created_after, account).1
}

/// As [`run_and_wait`], returning the run's id (sync_runs) too.
pub fn run_and_wait_for_run(
    kind: Kind,
    object: &str,
    created_after: Option<i64>,
    account: Option<&str>,
) -> (i64, i64) {
    if let Some(a) = account
        && (!a.starts_with("acct_")
            || a.len() > 40
            || !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        crate::errors::raise_with_code(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("\"{a}\" is not a Stripe account id (acct_...)"),
        );
    }
    // Both kinds list from the API: without a key, or with API settings the
    // job would not see, fail before a run is recorded.
    crate::stripe::require_key();
    crate::stripe::require_server_settings();
    if unsafe { pg_sys::XactIsoLevel } > pg_sys::XACT_READ_COMMITTED as i32 {
        crate::errors::raise_with_hint(
            PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_STATE,
            "stripe_sync: backfill, catch_up and verify must be called at READ COMMITTED isolation to follow their job".into(),
            "Call it in a READ COMMITTED transaction (the default), or on its own.".into(),
        );
    }
    let token = runs::new_token();
    let (object_name, account) = (object.to_owned(), account.map(str::to_owned));
    let job = match kind {
        Kind::Backfill => {
            Job::Backfill { object: object_name, created_after, token: token.clone(), account }
        }
        Kind::CatchUp => Job::CatchUp { token: token.clone(), account },
        Kind::Verify { repair } => {
            Job::Verify { object: object_name, repair, token: token.clone(), account }
        }
    };
    let Some(handle) = launch(job) else {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            "stripe_sync: could not start a job worker",
            "Raise max_worker_processes: each running backfill, catch_up or verify uses one."
        );
    };
    // Only touched again on the error path, after follow() has unwound.
    let handle = std::panic::AssertUnwindSafe(std::cell::RefCell::new(Some(handle)));
    PgTryBuilder::new(|| follow(&token, object, &handle))
        .catch_others(|e| {
            // Cancelled or failed while waiting: stop the job; its committed pages stay.
            if let Some(h) = handle.borrow_mut().take() {
                h.terminate();
            }
            e.rethrow()
        })
        .execute()
}

/// Follows the run row until the job worker has finished; returns the run's
/// id and its objects.
/// Seconds between the progress NOTICEs of a long run.
const PROGRESS_EVERY_S: f64 = 5.0;

fn follow(
    token: &str,
    object: &str,
    handle: &std::cell::RefCell<Option<DynamicBackgroundWorker>>,
) -> (i64, i64) {
    let mut pages_reported = 0;
    let mut progress_at = 0.0;
    loop {
        let stopped = handle.borrow().as_ref().is_none_or(stopped);
        if let Some(run) = runs::read(token) {
            if run.pages > pages_reported {
                pages_reported = run.pages;
                notice!("stripe_sync: {object}: {} pages, {} objects", run.pages, run.objects);
            }
            // Every few seconds of a long run: the pace, and what is left by its estimate.
            if run.status == "running" && run.seconds >= progress_at + PROGRESS_EVERY_S {
                progress_at = run.seconds;
                if let Some(line) =
                    stripe_sync_core::chains::progress(run.objects, run.seconds, run.objects_left)
                {
                    notice!("stripe_sync: {object}: {line}");
                }
            }
            match run.status.as_str() {
                "completed" => return (run.id, run.objects),
                "failed" | "cancelled" => crate::errors::reraise(
                    run.error_code.as_deref().unwrap_or("38000"),
                    run.error.unwrap_or_else(|| "the job failed".into()),
                ),
                _ => {}
            }
        }
        if stopped {
            // The worker is gone; read once more in case it finished just now.
            if let Some(run) = runs::read(token)
                && run.status == "completed"
            {
                return (run.id, run.objects);
            }
            crate::errors::raise_with_hint(
                PgSqlErrorCode::ERRCODE_ADMIN_SHUTDOWN,
                format!("stripe_sync: the job worker for {object} stopped before finishing"),
                "Call it again to resume: the pages it committed stay.".into(),
            );
        }
        // The postmaster sets our latch when the job worker exits (notify_pid),
        // so the end of a run is seen at once; the timeout paces progress notices.
        stripe::wait_for_latch(Duration::from_millis(100));
    }
}

/// Entry point of a job worker.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn stripe_sync_job_main(arg: pg_sys::Datum) {
    // SIGTERM (the caller cancelled) ends the job at the next interrupt check.
    unsafe {
        // pqsignal() is a macro for pqsignal_be() in a backend since 17.
        #[cfg(not(feature = "pg18"))]
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(on_sigterm));
        #[cfg(feature = "pg18")]
        pg_sys::pqsignal_be(pg_sys::SIGTERM as i32, Some(on_sigterm));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
    let db = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    crate::security::pin_session();
    let spec = match crate::launch::spec() {
        Ok(spec) => spec,
        Err(e) => {
            warning!("stripe_sync job: {e}");
            return;
        }
    };
    crate::config::apply_session_settings(&spec.settings);
    // A job with a caller records a run that the caller follows by its token.
    let (kind, object, created_after, token, account) = match spec.job {
        Job::CatchUpAll => return catch_up_all(),
        Job::Refresh => return refresh_all(),
        Job::Slices { object, run, leader, account } => {
            if let Some(resource) = objects::resource(&object) {
                help(Run { id: run, account }, resource, leader);
            }
            return;
        }
        Job::Backfill { object, created_after, token, account } => {
            (Kind::Backfill, object, created_after, token, account)
        }
        Job::CatchUp { token, account } => {
            (Kind::CatchUp, "event".to_owned(), None, token, account)
        }
        Job::Apply { .. } => {
            warning!("stripe_sync job: an apply helper's job given to a job worker");
            return;
        }
        Job::Verify { object, repair, token, account } => {
            (Kind::Verify { repair }, object, None, token, account)
        }
    };
    let recorded = match kind {
        Kind::Backfill => "backfill",
        Kind::CatchUp => "catch_up",
        Kind::Verify { .. } => "verify",
    };
    let run_id = BackgroundWorker::transaction(|| {
        runs::start(recorded, &object, created_after, &token, account.as_deref())
    });
    let run = Run { id: run_id, account };
    let outcome = runs::outcome(|| match (kind, objects::resource(&object)) {
        (Kind::Backfill, Some(resource)) => backfill::backfill(&run, resource, created_after),
        (Kind::CatchUp, _) => catch_up::catch_up(&run),
        (Kind::Verify { repair }, Some(resource)) => verify::verify(&run, resource, repair),
        _ => Err(ApiError::InvalidArgument(format!("unknown job {recorded} {object}"))),
    });
    BackgroundWorker::transaction(|| runs::finish(run_id, outcome));
}

/// A helper pages slices until none is left, its leader is gone or a worker
/// of the run failed; its own failure is recorded for the leader to raise.
fn help(run: Run, resource: &'static objects::Resource, leader: i32) {
    let outcome = runs::outcome(|| backfill::work_slices(&run, resource, Some(leader)));
    if let Err((message, code)) = outcome {
        BackgroundWorker::transaction(|| runs::record_failure(run.id, &message, &code));
    }
}

/// What PostgreSQL's `die()` does for a backend: ask for exit at the next
/// CHECK_FOR_INTERRUPTS, where the open transaction is rolled back cleanly.
unsafe extern "C-unwind" fn on_sigterm(_signal: i32) {
    unsafe {
        (&raw mut pg_sys::InterruptPending).write_volatile(1);
        (&raw mut pg_sys::ProcDiePending).write_volatile(1);
        pg_sys::SetLatch(pg_sys::MyLatch);
    }
}

/// The worker's own catch-up: every known account in turn, each a run of
/// its own (a failure is recorded in its run and logged; the others go on).
fn catch_up_all() {
    let accounts = BackgroundWorker::transaction(crate::accounts::known);
    for account in accounts {
        let token = runs::new_token();
        let account = (!account.is_empty()).then_some(account);
        let run_id = BackgroundWorker::transaction(|| {
            runs::start("catch_up", "event", None, &token, account.as_deref())
        });
        let run = Run { id: run_id, account };
        let outcome = runs::outcome(|| catch_up::catch_up(&run));
        if let Err((message, _)) = &outcome {
            warning!(
                "stripe_sync: catch-up of {} failed: {message}",
                crate::accounts::describe(run.account_key())
            );
        }
        BackgroundWorker::transaction(|| runs::finish(run_id, outcome));
    }
}

/// Re-reads until nothing is left to re-read (or a re-read fails: the
/// worker starts this job again later).
fn refresh_all() {
    loop {
        match crate::subxact::catch_between_transactions(|| crate::refresh::refresh_round(100)) {
            Ok(0) => break,
            Ok(_) => {}
            Err(f) => {
                warning!("stripe_sync: re-reading objects failed (SQLSTATE {})", f.sqlstate);
                break;
            }
        }
    }
}
