//! Balance transactions have no events: a catch-up keeps them current. It
//! lists those created since the newest one the mirror holds for the account
//! (less an overlap), or, for an account without any, those created since the
//! catch-up's own listing start; and it re-reads the pending ones whose
//! `available_on` has passed (the only change a balance transaction goes
//! through: pending to available). It also lists, once, the balance
//! transactions each paid automatic payout paid out (payout_reconciliation).
//! Through the shared request budget, HTTP
//! between transactions. A server or key without balance transactions (404,
//! 403) leaves them alone; another refusal is a warning, not a failed
//! catch-up (its events count); only what may pass later fails the run.

use crate::listing::{get, list_all, list_page};
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
    match refresh(run, since).and_then(|n| Ok(n + payouts(run)?)) {
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

/// Paid automatic payouts listed per catch-up at most.
const PAYOUTS_PER_RUN: i64 = 100;

/// Lists what each paid automatic payout of the account paid out that was
/// not listed yet (`GET /v1/balance_transactions?payout=`; a balance
/// transaction does not name its payout): the balance transactions are
/// applied, the links recorded in `payout_balance_transactions` and the
/// payout in `payouts_listed`, one transaction per payout. Returns the
/// balance transactions written.
fn payouts(run: &Run) -> Result<i64, ApiError> {
    let account = run.account.as_deref();
    let due: Vec<String> = BackgroundWorker::transaction(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT p.id FROM stripe_sync.payouts p
                  WHERE p._account_id = $1 AND p.status = 'paid' AND p.automatic AND NOT p._deleted
                    AND NOT EXISTS (SELECT 1 FROM stripe_sync.payouts_listed l
                                     WHERE l._account_id = p._account_id AND l.payout = p.id)
                  ORDER BY p.created, p.id LIMIT $2",
                None,
                &[run.account_key().into(), PAYOUTS_PER_RUN.into()],
            )
            .expect("payouts to list")
            .filter_map(|r| r.get::<String>(1).ok().flatten())
            .collect()
        })
    });
    let mut written = 0i64;
    for payout in &due {
        check_for_interrupts!();
        let fetched_at = stripe::now();
        let query = [("payout".to_owned(), payout.clone())];
        let txns = list_all(PATH, &query, account)?;
        let ids: Vec<&str> =
            txns.iter().filter_map(|t| t.get("id").and_then(|i| i.as_str())).collect();
        BackgroundWorker::transaction(|| {
            apply::apply_objects(&txns, fetched_at, account);
            Spi::run_with_args(
                "WITH links AS (
                     INSERT INTO stripe_sync.payout_balance_transactions (_account_id, payout, balance_transaction)
                     SELECT $1, $2, t FROM unnest($3::text[]) AS t
                     ON CONFLICT DO NOTHING
                 )
                 INSERT INTO stripe_sync.payouts_listed (_account_id, payout, transactions)
                 VALUES ($1, $2, cardinality($3::text[]))
                 ON CONFLICT (_account_id, payout) DO NOTHING",
                &[run.account_key().into(), payout.as_str().into(), ids.clone().into()],
            )
            .expect("record the payout's balance transactions");
        });
        written += txns.len() as i64;
    }
    Ok(written)
}
