//! Starting the extension's dynamic background workers: job workers
//! (backfill, catch-up, verify, slice helpers, the worker's own catch-up and
//! re-reads) and the worker's apply helpers. One [`launch`] for all: the
//! typed description of what to do (`stripe_sync_core::job`) goes into
//! `bgw_extra`, and the starting process's latch is set when the worker exits.

use crate::stripe;
use pgrx::bgworkers::{BackgroundWorkerBuilder, BackgroundWorkerStatus, DynamicBackgroundWorker};
use pgrx::prelude::*;
use std::time::Duration;
use stripe_sync_core::job::{Job, Spec};

/// `backend_type` of job workers.
pub const JOB_TYPE: &str = "stripe_sync job";
/// `backend_type` of apply helpers.
pub const HELPER_TYPE: &str = "stripe_sync apply";

/// Starts a worker in this database for `job`, carrying this session's retry
/// and timeout settings, that reports to this process (its latch is set when
/// the worker exits). None when no worker slot is free.
pub fn launch(job: Job) -> Option<DynamicBackgroundWorker> {
    let (kind, entry) = match job {
        Job::Apply { .. } => (HELPER_TYPE, "stripe_sync_apply_main"),
        _ => (JOB_TYPE, "stripe_sync_job_main"),
    };
    let spec = Spec { job, settings: crate::config::session_settings() };
    let extra = spec.encode().unwrap_or_else(|e| {
        crate::errors::raise_with_code(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("stripe_sync: {e}"),
        )
    });
    BackgroundWorkerBuilder::new(kind)
        .set_type(kind)
        .set_library("stripe_sync")
        .set_function(entry)
        .enable_spi_access()
        .set_argument(Some(pg_sys::Datum::from(unsafe { pg_sys::MyDatabaseId }.to_u32())))
        .set_extra(&extra)
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic()
        .ok()
}

/// Whether a worker has exited (or never will run).
pub fn stopped(h: &DynamicBackgroundWorker) -> bool {
    matches!(h.pid(), Err(BackgroundWorkerStatus::Stopped | BackgroundWorkerStatus::PostmasterDied))
}

/// Whether a worker is still running (or about to).
pub fn running(h: &DynamicBackgroundWorker) -> bool {
    !stopped(h)
}

/// Waits until every worker has exited.
pub fn wait_for(workers: &[DynamicBackgroundWorker]) {
    while !workers.iter().all(stopped) {
        stripe::wait_for_latch(Duration::from_millis(100));
    }
}

/// Stops the workers and waits until they have exited.
pub fn stop(workers: Vec<DynamicBackgroundWorker>) {
    for h in workers {
        let _ = h.terminate().wait_for_shutdown();
    }
}

/// Reads what [`launch`] put in `bgw_extra`, in the started worker.
pub fn spec() -> Result<Spec, String> {
    Spec::decode(pgrx::bgworkers::BackgroundWorker::get_extra())
}
