//! Catch-up: lists /v1/events (for one account) from where the last completed
//! catch-up of that account started listing, less an overlap, and queues the
//! events not stored yet. Its watermark is its own (`sync_cursors`, object
//! `event`), never the newest event delivered: while Stripe retries missed
//! deliveries it keeps delivering new events, and those must not hide the
//! missed ones. The platform's catch-up also lists thin events
//! (`/v2/core/events`, Stripe's event destinations). Balance transactions,
//! which have no events, are brought up to date in the same run, and paid
//! payouts reconciled (balance.rs). Runs in a job worker (jobs.rs), HTTP
//! between transactions.

use crate::listing::{get, list_page};
use crate::runs::{Run, record_page};
use crate::{jsonb, queue, shmem};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use stripe_sync_core::event::parse_event;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::pagination;
use stripe_sync_core::watermark::{EVENT_WINDOW_SECONDS, OVERLAP_SECONDS, listing_start};

/// The cursor object under which catch-up keeps its watermark.
const CURSOR_OBJECT: &str = "event";

/// `stripe_sync.event_retention` in seconds: how long processed events are kept.
pub fn retention_seconds() -> i64 {
    Spi::get_one_with_args::<i64>(
        "SELECT extract(epoch FROM $1)::bigint",
        &[crate::config::event_retention().into()],
    )
    .ok()
    .flatten()
    .unwrap_or(EVENT_WINDOW_SECONDS)
}

/// The account's watermark, if a catch-up of it ever completed.
pub fn watermark(account: &str) -> Option<i64> {
    Spi::get_one_with_args::<i64>(
        "SELECT high_water FROM stripe_sync.sync_cursors WHERE account = $1 AND object = $2",
        &[account.into(), CURSOR_OBJECT.into()],
    )
    .ok()
    .flatten()
}

/// Lists the account's events from its watermark (less the overlap) and
/// queues those not stored; on success moves the watermark to where this
/// listing started. Returns how many events were new.
pub fn catch_up(run: &Run) -> Result<i64, ApiError> {
    let account = run.account.as_deref();
    let started = chrono::Utc::now().timestamp();
    let created_gte = BackgroundWorker::transaction(|| {
        let mark = watermark(run.account_key());
        let (from, gap) = listing_start(mark, started, retention_seconds());
        if gap {
            warning!(
                "stripe_sync: catch-up of {} last completed more than 30 days ago; events older than Stripe's 30-day window cannot be recovered: run stripe_sync.backfill('all')",
                crate::accounts::describe(run.account_key())
            );
        }
        // The run records where it meant to start: the status view flags a
        // gap when that is beyond Stripe's window.
        let intended = mark.map_or(from, |w| w - OVERLAP_SECONDS);
        Spi::run_with_args(
            "UPDATE stripe_sync.sync_runs SET created_after = to_timestamp($2) WHERE id = $1",
            &[run.id.into(), (intended as f64).into()],
        )
        .expect("record catch-up start");
        from
    });
    let mut after: Option<String> = None;
    let mut queued = 0i64;
    loop {
        check_for_interrupts!();
        let query = pagination::list_query(&[], after.as_deref(), Some(created_gte));
        let page = list_page("/v1/events", &query, account)?;
        let last = page.last_id().map(str::to_owned);
        queued += store_listed(run, &page.data);
        if !page.has_more || last.is_none() {
            break;
        }
        after = last;
    }
    if run.account.is_none() {
        queued += thin_events(run, created_gte)?;
    }
    crate::balance::catch_up(run, created_gte)?;
    BackgroundWorker::transaction(|| finish(run.account_key(), started));
    Ok(queued)
}

/// Stores the listed events not stored yet, in one transaction, and wakes
/// the worker when there were; returns how many.
fn store_listed(run: &Run, events: &[serde_json::Value]) -> i64 {
    let new = BackgroundWorker::transaction(|| {
        let mut new = 0;
        for event in events {
            let text = event.to_string();
            // Events from the API need no signature; they still must be events.
            let Ok(mut meta) = parse_event(&text, usize::MAX) else { continue };
            // Listed for a connected account: its event, whether or not it says so.
            if meta.account.is_none() {
                meta.account = run.account.clone();
            }
            let data = jsonb::from_text(&text).unwrap_or_else(|e| {
                crate::errors::raise_with_code(
                    PgSqlErrorCode::ERRCODE_INVALID_JSON_TEXT,
                    format!("event {} from the API cannot be stored as jsonb: {e}", meta.id),
                )
            });
            if queue::insert(&meta, data) {
                new += 1;
            }
        }
        record_page(run.id, new);
        new
    });
    if new > 0 {
        shmem::wake_worker(); // committed above
    }
    new
}

/// Where Stripe lists thin events (its event destinations').
const THIN_EVENTS: &str = "/v2/core/events";

/// Lists the thin events created since `since` (`/v2/core/events`, newest
/// first, page by page through `next_page_url`) and queues those not stored
/// yet. Thin events carry their connected account (`context`), so the
/// platform's catch-up lists them all. A server without v2 events (404:
/// localstripe, a stand-in) has none: nothing to do.
fn thin_events(run: &Run, since: i64) -> Result<i64, ApiError> {
    let from = chrono::DateTime::from_timestamp(since, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut path = THIN_EVENTS.to_owned();
    let mut query = vec![("created[gte]".to_owned(), from), ("limit".to_owned(), "20".to_owned())];
    let mut queued = 0;
    loop {
        check_for_interrupts!();
        let page = match get(&path, &query, None) {
            Err(e) if e.status() == Some(404) => {
                log!("stripe_sync: no thin events listed here: {}", e.describe());
                return Ok(queued);
            }
            other => other?,
        };
        let events = page.get("data").and_then(|d| d.as_array()).ok_or_else(|| {
            ApiError::malformed("a v2 list page has no \"data\" array".to_owned())
        })?;
        queued += store_listed(run, events);
        // Only ever the same list's next page, whatever the answer says.
        match page.get("next_page_url").and_then(|u| u.as_str()) {
            Some(next) if next.starts_with(&format!("{THIN_EVENTS}?")) && !events.is_empty() => {
                (path, query) = stripe_sync_core::form::split_path(next);
            }
            _ => return Ok(queued),
        }
    }
}

/// The watermark moves to where the completed listing started.
fn finish(account: &str, started: i64) {
    let args: [DatumWithOid; 3] = [account.into(), CURSOR_OBJECT.into(), started.into()];
    Spi::run_with_args(
        "INSERT INTO stripe_sync.sync_cursors AS c (account, object, high_water, last_completed_at)
         VALUES ($1, $2, $3, now())
         ON CONFLICT (account, object) DO UPDATE
            SET high_water = greatest(c.high_water, excluded.high_water), last_completed_at = now()",
        &args,
    )
    .expect("move the catch-up watermark");
    crate::accounts::touch(account, crate::accounts::Done::CatchUp);
}

/// Whether the worker should start a catch-up of every account now: one is
/// configured to run every `interval`, no catch-up of the platform (the first
/// of every catch-up of all accounts: the worker's, or `catch_up()` from SQL
/// or pg_cron) started within it, and no catch-up runs.
pub fn due(interval: std::time::Duration) -> bool {
    let seconds = interval.as_secs_f64();
    Spi::get_one_with_args::<bool>(
        "SELECT NOT EXISTS (
                    SELECT 1 FROM stripe_sync.sync_runs r
                     WHERE r.kind = 'catch_up'
                       AND ((r.started_at > now() - make_interval(secs => $1) AND r.account IS NULL)
                            OR (r.status = 'running'
                                AND EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.pid = r.worker_pid))))",
        &[seconds.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}
