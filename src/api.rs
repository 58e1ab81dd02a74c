//! The SQL functions of schema stripe_sync, kept thin: check arguments, call
//! the module that does the work, map errors to SQLSTATEs.

use crate::{config, drain, errors, ingest, queue, shmem};
use pgrx::prelude::*;

/// `stripe_sync.ingest_event(payload, signature)`: see sql/finalize.sql.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn ingest_event(payload: Option<&str>, signature: Option<&str>) -> &'static str {
    match ingest::ingest(payload, signature) {
        Ok(outcome) => outcome.as_str(),
        Err(e) => errors::raise(e),
    }
}

/// `stripe_sync.process_pending(max_events)`: see sql/finalize.sql.
#[pg_extern(volatile, parallel_unsafe)]
fn process_pending(max_events: default!(Option<i32>, "NULL")) -> i32 {
    let max = match max_events {
        None => None,
        Some(n) if n >= 0 => Some(n as usize),
        Some(n) => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("max_events must be zero or more, or NULL, not {n}")
            );
        }
    };
    drain::run_in_session(max) as i32
}

/// `stripe_sync.worker_status()`: the worker's pid and last heartbeat, from
/// shared memory (no row while no worker runs). Feeds the `status` view.
#[pg_extern(stable, parallel_safe)]
fn worker_status() -> TableIterator<
    'static,
    (name!(pid, i32), name!(last_heartbeat, Option<pgrx::datum::TimestampWithTimeZone>)),
> {
    let row = crate::shmem::worker_info().map(|(pid, heartbeat_ms)| {
        let at = (heartbeat_ms > 0)
            .then(|| pgrx::datum::TimestampWithTimeZone::try_from(unix_ms_to_pg(heartbeat_ms)).ok())
            .flatten();
        (pid, at)
    });
    TableIterator::new(row)
}

/// Unix milliseconds to PostgreSQL's microseconds since 2000-01-01.
fn unix_ms_to_pg(ms: i64) -> i64 {
    const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;
    ms * 1000 - PG_EPOCH_OFFSET_US
}

/// `stripe_sync.retry_failed()`: every failed event back in the queue with a
/// fresh attempt budget; returns how many.
#[pg_extern(volatile, parallel_unsafe)]
fn retry_failed() -> i64 {
    let n = queue::requeue(None).len();
    if n > 0 {
        shmem::wake_worker_after_commit();
    }
    n as i64
}

/// `stripe_sync.replay_event(id)`: one event applied again, whatever its status.
/// The ordering rule still holds: a replayed old event changes nothing newer.
#[pg_extern(volatile, parallel_unsafe)]
fn replay_event(id: &str) -> &'static str {
    if queue::requeue(Some(id)).is_empty() {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("no event \"{id}\" in stripe_sync.events"),
            "replay_event() replays events that were ingested; catch_up() fetches missing ones from Stripe"
        );
    }
    shmem::wake_worker_after_commit();
    "queued"
}

/// `stripe_sync.purge_events(older_than)`: deletes processed and skipped events
/// handled longer ago than `older_than` (default stripe_sync.event_retention).
#[pg_extern(volatile, parallel_unsafe)]
fn purge_events(older_than: default!(Option<pgrx::datum::Interval>, "NULL")) -> i64 {
    queue::purge(older_than.unwrap_or_else(config::event_retention))
}
