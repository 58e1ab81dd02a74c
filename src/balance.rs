//! Balance transactions have no events: a catch-up keeps them current. It
//! lists those created since the newest one the mirror holds for the account
//! (less an overlap), or, for an account without any, those created since the
//! catch-up's own listing start; and it re-reads the pending ones whose
//! `available_on` has passed (the only change a balance transaction goes
//! through: pending to available). Through the shared request budget, HTTP
//! between transactions. A server or key without balance transactions (404,
//! 403) leaves them alone; another refusal is a warning, not a failed
//! catch-up (its events count); only what may pass later fails the run.

use crate::listing::{get, list_page};
use crate::runs::{Run, record_page};
use crate::{apply, stripe};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::prelude::*;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::pagination;
use stripe_sync_core::watermark::OVERLAP_SECONDS;

const PATH: &str = "/v1/balance_transactions";
/// Pending balance transactions re-read per catch-up at most.
const REREADS_PER_RUN: i64 = 1000;

/// Brings the account's balance transactions up to date; returns how many
/// were written. `since`: where the catch-up listed events from.
pub fn catch_up(run: &Run, since: i64) -> Result<i64, ApiError> {
    match refresh(run, since) {
        Err(e) if matches!(e.status(), Some(403 | 404)) => {
            log!("stripe_sync: balance transactions not kept current here: {}", e.describe());
            Ok(0)
        }
        // Refused for good (a bad request): the events of the catch-up still count.
        Err(e) if !e.retryable() => {
            warning!("stripe_sync: balance transactions not brought up to date: {}", e.describe());
            Ok(0)
        }
        other => other,
    }
}

fn refresh(run: &Run, since: i64) -> Result<i64, ApiError> {
    let account = run.account.as_deref();
    let (newest, due): (Option<i64>, Vec<String>) = BackgroundWorker::transaction(|| {
        let newest = Spi::get_one_with_args::<i64>(
            "SELECT extract(epoch FROM max(created))::bigint FROM stripe_sync.balance_transactions
              WHERE _account_id = $1",
            &[run.account_key().into()],
        )
        .ok()
        .flatten();
        let due = Spi::connect(|c| {
            c.select(
                "SELECT id FROM stripe_sync.balance_transactions
                  WHERE _account_id = $1 AND status = 'pending' AND available_on <= now() AND NOT _deleted
                  ORDER BY available_on LIMIT $2",
                None,
                &[run.account_key().into(), REREADS_PER_RUN.into()],
            )
            .expect("pending balance transactions")
            .filter_map(|r| r.get::<String>(1).ok().flatten())
            .collect()
        });
        (newest, due)
    });
    let created_gte = newest.map_or(since, |t| t - OVERLAP_SECONDS);
    let mut written = 0i64;
    let mut after: Option<String> = None;
    loop {
        check_for_interrupts!();
        let query = pagination::list_query(&[], after.as_deref(), Some(created_gte));
        let fetched_at = stripe::now();
        let page = list_page(PATH, &query, account)?;
        let n = page.data.len() as i64;
        BackgroundWorker::transaction(|| {
            apply::apply_objects(&page.data, fetched_at, account);
            record_page(run.id, 0);
        });
        written += n;
        after = page.last_id().map(str::to_owned);
        if !page.has_more || after.is_none() {
            break;
        }
    }
    // Stripe retrieves one at a time; what was fetched is applied by the
    // hundred, each hundred in one statement as of its first fetch.
    for chunk in due.chunks(100) {
        let fetched_at = stripe::now();
        let mut objects = Vec::with_capacity(chunk.len());
        for id in chunk {
            check_for_interrupts!();
            match get(&format!("{PATH}/{id}"), &[], account) {
                Ok(object) => objects.push(object),
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e),
            }
        }
        BackgroundWorker::transaction(|| apply::apply_objects(&objects, fetched_at, account));
        written += objects.len() as i64;
    }
    Ok(written)
}
