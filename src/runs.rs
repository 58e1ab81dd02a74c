//! A job's row in `stripe_sync.sync_runs`: recorded when the job starts,
//! counted page by page, finished with its outcome, and read by the session
//! that follows the job (jobs.rs). A failure of one worker of a run is kept in
//! the row for the others (and the leader) to see.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use stripe_sync_core::http::ApiError;

/// One run of a job, as the job worker sees it.
pub struct Run {
    pub id: i64,
    pub account: Option<String>,
}

impl Run {
    /// The account as the cursor tables key it: '' for the platform account.
    pub fn account_key(&self) -> &str {
        self.account.as_deref().unwrap_or_default()
    }
}

/// What a job ended with: its count, or its message and SQLSTATE.
pub type Outcome = Result<i64, (String, String)>;

/// A random handle for a run row, by which its caller finds it.
pub fn new_token() -> String {
    format!("{:016x}", (stripe_sync_core::backoff::random_unit() * 2f64.powi(60)) as u64)
}

/// Records the start of a run; returns its id.
pub fn start(
    kind: &str,
    object: &str,
    created_after: Option<i64>,
    token: &str,
    account: Option<&str>,
) -> i64 {
    let args: [DatumWithOid; 6] = [
        kind.into(),
        object.into(),
        created_after.map(|t| t as f64).into(),
        token.into(),
        unsafe { pg_sys::MyProcPid }.into(),
        account.into(),
    ];
    Spi::get_one_with_args::<i64>(
        "INSERT INTO stripe_sync.sync_runs (kind, object, created_after, token, worker_pid, account)
         VALUES ($1, $2, to_timestamp($3), $4, $5, $6) RETURNING id",
        &args,
    )
    .expect("create run")
    .expect("run id")
}

/// Records how the run ended.
pub fn finish(run_id: i64, outcome: Outcome) {
    let (status, error, code) = match &outcome {
        Ok(_) => ("completed", None, None),
        Err((message, code)) => ("failed", Some(message.as_str()), Some(code.as_str())),
    };
    let args: [DatumWithOid; 4] = [run_id.into(), status.into(), error.into(), code.into()];
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_runs SET status = $2, error = $3, error_code = $4, finished_at = now()
          WHERE id = $1",
        &args,
    )
    .expect("finish run");
}

/// Runs a job's work, between transactions, mapping its failure to a message
/// and SQLSTATE for its run row.
pub fn outcome(work: impl FnOnce() -> Result<i64, ApiError> + std::panic::UnwindSafe) -> Outcome {
    crate::subxact::catch_between_transactions(|| {
        work().map_err(|e| (e.describe(), stripe_sync_core::sqlstate::of_api(&e).to_owned()))
    })
    .unwrap_or_else(|f| Err((f.message, f.sqlstate)))
}

/// Counts a committed page; returns whether a worker of the run has failed.
pub fn record_page(run_id: i64, n: i64) -> bool {
    Spi::get_one_with_args::<bool>(
        "UPDATE stripe_sync.sync_runs SET pages = pages + 1, objects = objects + $2 WHERE id = $1
         RETURNING error IS NOT NULL",
        &[run_id.into(), n.into()],
    )
    .expect("record page")
    .unwrap_or(false)
}

/// Records the run's estimate of the objects still to list.
pub fn record_left(run_id: i64, left: i64) {
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_runs SET objects_left = $2 WHERE id = $1",
        &[run_id.into(), left.into()],
    )
    .expect("record what is left");
}

/// A helper's failure, for its leader to raise: the first one recorded stays.
pub fn record_failure(run_id: i64, message: &str, code: &str) {
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_runs SET error = coalesce(error, $2), error_code = coalesce(error_code, $3)
          WHERE id = $1",
        &[run_id.into(), message.into(), code.into()],
    )
    .expect("record a helper's failure");
}

/// Records how many workers page the run.
pub fn record_workers(run_id: i64, workers: i32) {
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_runs SET workers = $2 WHERE id = $1",
        &[run_id.into(), workers.into()],
    )
    .expect("record workers");
}

/// A run row as its caller follows it.
pub struct Followed {
    pub id: i64,
    pub status: String,
    pub pages: i32,
    pub objects: i64,
    pub error: Option<String>,
    pub error_code: Option<String>,
    /// Seconds since the run started.
    pub seconds: f64,
    /// The run's estimate of the objects still to list, if it has one.
    pub objects_left: Option<i64>,
}

/// Reads the run row of `token`. Through the read-write SPI path on purpose:
/// only that takes a new snapshot per query, so the job's commits become
/// visible.
pub fn read(token: &str) -> Option<Followed> {
    Spi::connect_mut(|c| {
        let rows = c
            .update(
                "SELECT status, pages, objects, error, error_code, id,
                        extract(epoch FROM clock_timestamp() - started_at)::float8, objects_left
                   FROM stripe_sync.sync_runs WHERE token = $1",
                None,
                &[token.into()],
            )
            .ok()?;
        let row = rows.first();
        Some(Followed {
            id: row.get::<i64>(6).ok().flatten()?,
            status: row.get::<String>(1).ok().flatten()?,
            pages: row.get::<i32>(2).ok().flatten().unwrap_or(0),
            objects: row.get::<i64>(3).ok().flatten().unwrap_or(0),
            error: row.get::<String>(4).ok().flatten(),
            error_code: row.get::<String>(5).ok().flatten(),
            seconds: row.get::<f64>(7).ok().flatten().unwrap_or(0.0),
            objects_left: row.get::<i64>(8).ok().flatten(),
        })
    })
}
