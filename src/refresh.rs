//! Re-reads of single objects from the API: `sync_object(id)` in the caller's
//! session, and the worker's refresh of what the apply could not settle from
//! events alone (same-second ties, `refresh_requests`) and of rows whose
//! embedded child list arrived partial. HTTP outside any transaction.

use crate::listing::{complete_children, get, list_of_parent};
use crate::{apply, stripe};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use serde_json::Value;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::objects;

/// Fetches one object (`resource`, by id, of `account`: None for the
/// platform), with its child lists completed; no transaction needed. Returns
/// the object and when it was fetched.
fn fetch_complete(
    resource: &objects::Resource,
    id: &str,
    account: Option<&str>,
) -> Result<(Value, TimestampWithTimeZone), ApiError> {
    let fetched_at = stripe::now();
    if let objects::Listing::PerParent { written: objects::Written::Summary, .. } = resource.listing
    {
        // A summary is made from its parent's list, listed in full.
        return match list_of_parent(resource, id, account)? {
            Some(listed) => Ok((objects::summary_of(id, listed), fetched_at)),
            None => Err(ApiError::Refused {
                status: 404,
                error_type: None,
                code: Some("resource_missing".into()),
                message: format!("no such customer: {id}"),
                request_id: None,
            }),
        };
    }
    let path = resource.retrieve_path(id).ok_or_else(|| {
        ApiError::InvalidArgument(format!(
            "{} cannot be retrieved by its id alone",
            resource.object
        ))
    })?;
    let mut object = get(&path, &[], account)?;
    complete_children(std::slice::from_mut(&mut object), account)?;
    Ok((object, fetched_at))
}

/// `sync_object(id)`: refetch, apply, return the table name. The object type
/// comes from the id's prefix.
pub fn sync_object(id: &str) -> Result<&'static str, ApiError> {
    let (resource, spec) = objects::resource_for_id(id)
        .and_then(|r| Some((r, stripe_sync_core::mapping::spec_for(r.object)?)))
        .ok_or_else(|| {
            ApiError::InvalidArgument(format!("\"{id}\" has no known Stripe id prefix of a mirrored object (cus_, sub_, in_, ch_, pi_, prod_, price_, ...)"),
            )
        })?;
    let (object, fetched_at) = fetch_complete(resource, id, None)?;
    apply::apply_objects(&[object], fetched_at, None);
    Ok(spec.table)
}

/// An object to re-read: its account (`''`: the platform), id and type.
struct Wanted {
    account: String,
    id: String,
    object: String,
}

/// What waits to be re-read and is due (stripe_sync_core::mapping::due_rereads_sql):
/// the requests whose time has come, and the rows whose embedded child list is
/// partial. A re-read that was refused waits an hour (its request is stamped
/// ahead: see [`defer`]), a partial row's too.
fn due_sql() -> &'static str {
    static DUE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUE.get_or_init(stripe_sync_core::mapping::due_rereads_sql)
}

/// Objects to re-read now.
fn wanted(limit: i64) -> Vec<Wanted> {
    BackgroundWorker::transaction(|| {
        Spi::connect(|c| {
            c.select(due_sql(), None, &[limit.into()])
                .expect("objects to refresh")
                .filter_map(|r| {
                    Some(Wanted {
                        account: r.get::<String>(1).ok().flatten()?,
                        id: r.get::<String>(2).ok().flatten()?,
                        object: r.get::<String>(3).ok().flatten()?,
                    })
                })
                .collect()
        })
    })
}

/// Whether anything is due to be re-read.
pub fn any_wanted() -> bool {
    Spi::get_one_with_args::<bool>(&format!("SELECT EXISTS ({})", due_sql()), &[1i64.into()])
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Job side: re-reads up to `limit` objects, each applied as of its fetch and
/// its request dropped in one transaction. Returns how many were done; stops
/// at the first transient failure (tried again later).
pub fn refresh_round(limit: i64) -> usize {
    let mut done = 0;
    for w in wanted(limit) {
        check_for_interrupts!();
        let account = (!w.account.is_empty()).then_some(w.account.as_str());
        let Some(resource) = objects::resource(&w.object) else {
            // Not an object type this library lists (a request from another version).
            BackgroundWorker::transaction(|| forget(&w, None));
            continue;
        };
        let (object, fetched_at) = match fetch_complete(resource, &w.id, account) {
            Ok(got) => got,
            // Gone from Stripe: a tombstone ends the attempts.
            Err(e) if e.status() == Some(404) => {
                (stripe_sync_core::mapping::tombstone(&w.object, &w.id), stripe::now())
            }
            // Refused (a 4xx other than 404 and 429: the key may not read it, say): the
            // tie rule stands meanwhile, and the re-read is tried again in an hour.
            Err(e) if e.status().is_some_and(|s| (400..500).contains(&s) && s != 429) => {
                warning!(
                    "stripe_sync: re-reading {} from the API was refused; trying again in an hour: {}",
                    w.id,
                    e.describe()
                );
                BackgroundWorker::transaction(|| defer(&w));
                continue;
            }
            // Not a request that can ever be made (an object retrieved only under its
            // customer): asking again changes nothing.
            Err(e) if !e.retryable() && e.status().is_none() => {
                warning!("stripe_sync: {} is not re-read: {}", w.id, e.describe());
                BackgroundWorker::transaction(|| forget(&w, None));
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
            apply::apply_objects(&[object], fetched_at, account);
            forget(&w, Some(fetched_at));
        });
        done += 1;
    }
    done
}

/// A refused re-read of `w` waits an hour: its request (made if `w` is a
/// partial row) is stamped that far ahead. A new tie of the object stamps it
/// anew, for now.
fn defer(w: &Wanted) {
    let args: [DatumWithOid; 3] =
        [w.account.as_str().into(), w.id.as_str().into(), w.object.as_str().into()];
    Spi::run_with_args(
        "INSERT INTO stripe_sync.refresh_requests AS r (account, id, object, requested_at)
         VALUES ($1, $2, $3, now() + interval '1 hour')
         ON CONFLICT (account, id) DO UPDATE SET requested_at = excluded.requested_at",
        &args,
    )
    .expect("defer a re-read");
}

/// Drops the re-read request of `w`: done with a fetch made at `fetched_at`
/// (a request recorded since, for a tie of a later batch, stays), or of an
/// object type this library does not list (None).
fn forget(w: &Wanted, fetched_at: Option<TimestampWithTimeZone>) {
    let args: [DatumWithOid; 3] =
        [w.account.as_str().into(), w.id.as_str().into(), fetched_at.into()];
    Spi::run_with_args(
        "DELETE FROM stripe_sync.refresh_requests
          WHERE account = $1 AND id = $2 AND ($3::timestamptz IS NULL OR requested_at <= $3)",
        &args,
    )
    .expect("done with the request");
}

/// Without an API key the tie rule stands: requests are dropped.
pub fn drop_refresh_requests() {
    BackgroundWorker::transaction(|| {
        Spi::run("DELETE FROM stripe_sync.refresh_requests").expect("drop refresh requests");
    });
}
