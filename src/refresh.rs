//! Re-reads of single objects from the API: `sync_object(id)` in the caller's
//! session, and the worker's refresh of what the apply could not settle from
//! events alone (same-second ties, `refresh_requests`) and of rows whose
//! embedded child list arrived partial. HTTP outside any transaction.

use crate::backfill::{complete_children, get};
use crate::{apply, stripe};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use serde_json::Value;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::objects;

/// Fetches one object by id (of `account`, None for the platform), with its
/// child lists completed; no transaction needed. Returns the object, when it
/// was fetched, and its table.
fn fetch_complete(
    id: &str,
    account: Option<&str>,
) -> Result<(Value, TimestampWithTimeZone, &'static str), ApiError> {
    let resource = objects::resource_for_id(id)
        .filter(|r| stripe_sync_core::mapping::spec_for(r.object).is_some())
        .ok_or_else(|| {
            ApiError::local(
                "unknown_id",
                format!("\"{id}\" has no known Stripe id prefix of a mirrored object (cus_, sub_, in_, ch_, pi_, prod_, price_, ...)"),
            )
        })?;
    let fetched_at = stripe::now();
    let mut object = get(&format!("{}/{id}", resource.path), &[], account)?;
    complete_children(std::slice::from_mut(&mut object), account)?;
    let table = stripe_sync_core::mapping::spec_for(resource.object).map_or("", |s| s.table);
    Ok((object, fetched_at, table))
}

/// `sync_object(id)`: refetch, apply, return the table name.
pub fn sync_object(id: &str) -> Result<&'static str, ApiError> {
    let (object, fetched_at, table) = fetch_complete(id, None)?;
    apply::apply_objects(&[object], fetched_at, None);
    Ok(table)
}

/// An object to re-read: its account (`''`: the platform) and id.
struct Wanted {
    account: String,
    id: String,
}

/// Objects to re-read, oldest request first: those the apply asked for and
/// rows whose embedded child list is partial.
fn wanted(limit: i64) -> Vec<Wanted> {
    BackgroundWorker::transaction(|| {
        Spi::connect(|c| {
            c.select(
                "(SELECT account, id FROM stripe_sync.refresh_requests ORDER BY requested_at LIMIT $1)
                 UNION
                 (SELECT _account_id, id FROM stripe_sync.subscriptions WHERE NOT _children_complete AND NOT _deleted LIMIT $1)
                 UNION
                 (SELECT _account_id, id FROM stripe_sync.invoices WHERE NOT _children_complete AND NOT _deleted LIMIT $1)",
                None,
                &[limit.into()],
            )
            .expect("objects to refresh")
            .filter_map(|r| {
                Some(Wanted {
                    account: r.get::<String>(1).ok().flatten()?,
                    id: r.get::<String>(2).ok().flatten()?,
                })
            })
            .collect()
        })
    })
}

/// Whether anything waits to be re-read.
pub fn any_wanted() -> bool {
    Spi::get_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM stripe_sync.refresh_requests)
             OR EXISTS (SELECT 1 FROM stripe_sync.subscriptions WHERE NOT _children_complete AND NOT _deleted)
             OR EXISTS (SELECT 1 FROM stripe_sync.invoices WHERE NOT _children_complete AND NOT _deleted)",
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Job side: re-reads up to `limit` objects, each applied and its request
/// dropped in one transaction. Returns how many were done; stops at the
/// first failure (tried again next round).
pub fn refresh_round(limit: i64) -> usize {
    let mut done = 0;
    for w in wanted(limit) {
        check_for_interrupts!();
        let account = (!w.account.is_empty()).then_some(w.account.as_str());
        let object = match fetch_complete(&w.id, account) {
            Ok((object, _, _)) => object,
            // Gone from Stripe: a tombstone ends the attempts.
            Err(e) if e.status == Some(404) => {
                let kind = objects::resource_for_id(&w.id).map_or("", |r| r.object);
                serde_json::json!({"id": w.id, "object": kind, "deleted": true})
            }
            // Refused for good (a 4xx other than 404 and 429: the key may not read it, say):
            // the tie rule stands for it, and the request goes.
            Err(e) if e.status.is_some_and(|s| (400..500).contains(&s) && s != 429) => {
                warning!(
                    "stripe_sync: re-reading {} from the API was refused, the event-id rule stands for it: {}",
                    w.id,
                    e.describe()
                );
                BackgroundWorker::transaction(|| forget(&w));
                continue;
            }
            Err(e) => {
                warning!(
                    "stripe_sync worker: re-reading {} from the API failed: {}",
                    w.id,
                    e.describe()
                );
                break;
            }
        };
        BackgroundWorker::transaction(|| {
            apply::apply_objects(&[object], stripe::now(), account);
            forget(&w);
        });
        done += 1;
    }
    done
}

/// Drops the re-read request of `w` (done, or refused for good).
fn forget(w: &Wanted) {
    let args: [DatumWithOid; 2] = [w.account.as_str().into(), w.id.as_str().into()];
    Spi::run_with_args("DELETE FROM stripe_sync.refresh_requests WHERE account = $1 AND id = $2", &args)
        .expect("done with the request");
}

/// Without an API key the tie rule stands: requests are dropped.
pub fn drop_refresh_requests() {
    BackgroundWorker::transaction(|| {
        Spi::run("DELETE FROM stripe_sync.refresh_requests").expect("drop refresh requests");
    });
}
