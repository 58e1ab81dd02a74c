//! Backfill and catch-up. Backfill pages through a list endpoint, applying each
//! page with the same statements as events and committing it together with
//! its cursor, so an interrupted run resumes at the next page. Catch-up lists
//! /v1/events since the newest event seen and queues the missing ones. Both
//! run inside a job worker (jobs.rs): HTTP happens between transactions,
//! never inside one. `sync_object` refetches one object in the caller's session.

use crate::{apply, jsonb, queue, shmem, stripe};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use serde_json::Value;
use stripe_sync_core::event::parse_event;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::objects::{self, Resource};
use stripe_sync_core::pagination::{self, Page};

/// Stripe keeps events for 30 days.
pub const EVENT_WINDOW_SECONDS: i64 = 30 * 24 * 3600;

/// One run of a job, as the job worker sees it.
pub struct Run {
    pub id: i64,
    pub account: Option<String>,
}

fn get(path: &str, query: &[(String, String)], account: Option<&str>) -> Result<Value, ApiError> {
    stripe::request(stripe::Method::Get, path, query, account)
}

/// Fetches a list page.
fn list_page(
    path: &str,
    query: &[(String, String)],
    account: Option<&str>,
) -> Result<Page, ApiError> {
    let body = get(path, query, account)?;
    pagination::page_of(body).map_err(ApiError::network)
}

/// Completes every embedded child list that stopped at `has_more`, so the
/// children tables get every item (the peers keep only the first ten).
pub fn complete_children(objects: &mut [Value], account: Option<&str>) -> Result<(), ApiError> {
    for object in objects.iter_mut() {
        let (Some(kind), Some(id)) = (
            object.get("object").and_then(Value::as_str).map(str::to_owned),
            object.get("id").and_then(Value::as_str).map(str::to_owned),
        ) else {
            continue;
        };
        let Some(spec) = stripe_sync_core::mapping::spec_for(&kind) else { continue };
        for child in spec.children {
            if !pagination::list_is_partial(object, child.list) {
                continue;
            }
            let Some((path, base)) = objects::child_list(&kind, child.list, &id) else { continue };
            let mut rest = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let mut q = base.clone();
                q.extend(pagination::list_query(&[], after.as_deref(), None));
                let page = list_page(&path, &q, account)?;
                after = page.last_id().map(str::to_owned);
                let more = page.has_more;
                rest.extend(page.data);
                if !more || after.is_none() {
                    break;
                }
            }
            pagination::complete_list(object, child.list, rest);
        }
    }
    Ok(())
}

/// Fetches one object by id, with its child lists completed; no transaction
/// needed. Returns the object, when it was fetched, and its table.
fn fetch_complete(id: &str) -> Result<(Value, TimestampWithTimeZone, &'static str), ApiError> {
    let resource = objects::resource_for_id(id).ok_or_else(|| {
        ApiError::local(
            "unknown_id",
            format!("\"{id}\" has no known Stripe id prefix (cus_, sub_, in_, ch_, pi_, prod_, price_, ...)"),
        )
    })?;
    let fetched_at = stripe::now();
    let mut object = get(&format!("{}/{id}", resource.path), &[], None)?;
    complete_children(std::slice::from_mut(&mut object), None)?;
    let table = stripe_sync_core::mapping::spec_for(resource.object).map_or("", |s| s.table);
    Ok((object, fetched_at, table))
}

/// `sync_object(id)`: refetch, apply, return the table name.
pub fn sync_object(id: &str) -> Result<&'static str, ApiError> {
    let (object, fetched_at, table) = fetch_complete(id)?;
    apply::apply_objects(&[object], fetched_at, None);
    Ok(table)
}

/// Worker side: re-reads objects from the API, HTTP outside any transaction:
/// those the apply asked for (`refresh_requests`: same-second events it could
/// not order) and rows whose embedded child list arrived partial (`has_more`,
/// so `_children_complete` is false). Returns how many were done.
pub fn refresh_round(limit: i64) -> usize {
    let ids: Vec<String> = BackgroundWorker::transaction(|| {
        Spi::connect(|c| {
            c.select(
                "(SELECT id FROM stripe_sync.refresh_requests ORDER BY requested_at LIMIT $1)
                 UNION
                 (SELECT id FROM stripe_sync.subscriptions WHERE NOT _children_complete AND NOT _deleted LIMIT $1)
                 UNION
                 (SELECT id FROM stripe_sync.invoices WHERE NOT _children_complete AND NOT _deleted LIMIT $1)",
                None,
                &[limit.into()],
            )
            .expect("objects to refresh")
            .filter_map(|r| r.get::<String>(1).ok().flatten())
            .collect()
        })
    });
    let mut done = 0;
    for id in &ids {
        let object = match fetch_complete(id) {
            Ok((object, _, _)) => object,
            // Gone from Stripe: a tombstone ends the attempts.
            Err(e) if e.status == Some(404) => {
                let kind = objects::resource_for_id(id).map_or("", |r| r.object);
                serde_json::json!({"id": id, "object": kind, "deleted": true})
            }
            Err(e) => {
                warning!(
                    "stripe_sync worker: re-reading {id} from the API failed: {}",
                    e.describe()
                );
                break; // try again next round
            }
        };
        BackgroundWorker::transaction(|| {
            apply::apply_objects(&[object], stripe::now(), None);
            Spi::run_with_args(
                "DELETE FROM stripe_sync.refresh_requests WHERE id = $1",
                &[id.as_str().into()],
            )
            .expect("done with the request");
        });
        done += 1;
    }
    done
}

/// Without an API key the tie rule stands: requests are dropped.
pub fn drop_refresh_requests() {
    BackgroundWorker::transaction(|| {
        Spi::run("DELETE FROM stripe_sync.refresh_requests").expect("drop refresh requests");
    });
}

/// Where a backfill starts: resuming an interrupted run, or a new one.
struct Start {
    starting_after: Option<String>,
    created_gte: Option<i64>,
    full: bool,
    resumed: bool,
}

/// Runs one backfill of `resource`; returns the objects applied.
pub fn backfill(
    run: &Run,
    resource: &Resource,
    created_after: Option<i64>,
) -> Result<i64, ApiError> {
    let account = run.account.as_deref();
    let start = BackgroundWorker::transaction(|| begin_cursor(run, resource.object, created_after));
    let mut after = start.starting_after.clone();
    let mut total = 0i64;
    loop {
        check_for_interrupts!();
        let query =
            pagination::list_query(resource.list_params, after.as_deref(), start.created_gte);
        let fetched_at = stripe::now();
        let page = stripe::request_with(
            stripe::Method::Get,
            resource.path,
            &query,
            account,
            pagination::scan_page,
        )?;
        // A child list that stopped short is completed in the page's tree;
        // otherwise the text goes to the database as it came.
        let completed = if page.has_partial_children() {
            let mut tree = pagination::parse_page(&page.body).map_err(ApiError::network)?;
            complete_children(&mut tree.data, account)?;
            Some(tree)
        } else {
            None
        };
        let n = page.items.len() as i64;
        let last = page.last_id().map(str::to_owned);
        let high = page.max_created();
        BackgroundWorker::transaction(|| {
            match &completed {
                Some(tree) => apply::apply_objects(&tree.data, fetched_at, account),
                None => apply::apply_page(&page, fetched_at, account),
            };
            if start.full {
                remember_seen(run, resource.object, &page.ids());
            }
            save_cursor(run, resource.object, last.as_deref(), high);
            record_page(run.id, n);
        });
        total += n;
        if !page.has_more || last.is_none() {
            break;
        }
        after = last;
    }
    if start.full {
        reconcile(run, resource)?;
    }
    BackgroundWorker::transaction(|| finish_cursor(run, resource.object));
    Ok(total)
}

fn begin_cursor(run: &Run, object: &str, created_after: Option<i64>) -> Start {
    let account = run.account.clone().unwrap_or_default();
    Spi::connect_mut(|c| {
        let args: [DatumWithOid; 2] = [account.as_str().into(), object.into()];
        c.update(
            "INSERT INTO stripe_sync.sync_cursors (account, object) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            None,
            &args,
        )
        .expect("cursor row");
        let row = c
            .update(
                "SELECT in_progress, starting_after, extract(epoch FROM created_after)::bigint, high_water
                   FROM stripe_sync.sync_cursors WHERE account = $1 AND object = $2 FOR UPDATE",
                None,
                &args,
            )
            .expect("read cursor")
            .first();
        let in_progress = row.get::<bool>(1).ok().flatten().unwrap_or(false);
        let cursor_after = row.get::<String>(2).ok().flatten();
        let cursor_created = row.get::<i64>(3).ok().flatten();
        let high_water = row.get::<i64>(4).ok().flatten();
        // An interrupted run with the same filter resumes where it stopped.
        let same_filter =
            created_after.is_none() || created_after.filter(|t| *t > 0) == cursor_created;
        let start = if in_progress && same_filter {
            Start {
                starting_after: cursor_after,
                created_gte: cursor_created,
                full: cursor_created.is_none(),
                resumed: true,
            }
        } else {
            // Explicit filter, or incremental from the last completed run, or
            // everything (no filter at all: created_after at or before the epoch).
            let created_gte = created_after.or(high_water).filter(|t| *t > 0);
            Start { starting_after: None, created_gte, full: created_gte.is_none(), resumed: false }
        };
        let args: [DatumWithOid; 5] = [
            account.as_str().into(),
            object.into(),
            start.created_gte.map(|t| t as f64).into(),
            start.starting_after.as_deref().into(),
            start.resumed.into(),
        ];
        c.update(
            "UPDATE stripe_sync.sync_cursors
                SET in_progress = true, starting_after = $4,
                    created_after = to_timestamp($3),
                    run_high_water = CASE WHEN $5 THEN run_high_water END
              WHERE account = $1 AND object = $2",
            None,
            &args,
        )
        .expect("start cursor");
        let run_args: [DatumWithOid; 3] =
            [run.id.into(), start.resumed.into(), start.created_gte.map(|t| t as f64).into()];
        c.update(
            "UPDATE stripe_sync.sync_runs SET resumed = $2, created_after = to_timestamp($3) WHERE id = $1",
            None,
            &run_args,
        )
        .expect("run start");
        if !start.resumed {
            c.update(
                "DELETE FROM stripe_sync.sync_seen WHERE account = $1 AND object = $2",
                None,
                &args[..2],
            )
            .expect("clear seen");
        }
        start
    })
}

fn remember_seen(run: &Run, object: &str, ids: &[&str]) {
    let account = run.account.clone().unwrap_or_default();
    let args: [DatumWithOid; 3] = [account.as_str().into(), object.into(), ids.into()];
    Spi::run_with_args(
        "INSERT INTO stripe_sync.sync_seen (account, object, id)
         SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING",
        &args,
    )
    .expect("remember seen ids");
}

fn save_cursor(run: &Run, object: &str, last: Option<&str>, high: Option<i64>) {
    let account = run.account.clone().unwrap_or_default();
    let args: [DatumWithOid; 4] =
        [account.as_str().into(), object.into(), last.into(), high.into()];
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_cursors
            SET starting_after = coalesce($3, starting_after),
                run_high_water = greatest(run_high_water, $4)
          WHERE account = $1 AND object = $2",
        &args,
    )
    .expect("save cursor");
}

fn record_page(run_id: i64, n: i64) {
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_runs SET pages = pages + 1, objects = objects + $2 WHERE id = $1",
        &[run_id.into(), n.into()],
    )
    .expect("record page");
}

fn finish_cursor(run: &Run, object: &str) {
    let account = run.account.clone().unwrap_or_default();
    let args: [DatumWithOid; 2] = [account.as_str().into(), object.into()];
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_cursors
            SET in_progress = false, starting_after = NULL, created_after = NULL,
                high_water = greatest(high_water, run_high_water), run_high_water = NULL,
                last_completed_at = now()
          WHERE account = $1 AND object = $2",
        &args,
    )
    .expect("finish cursor");
}

/// After a full run: rows of this account that the API no longer listed are
/// retrieved one by one; those confirmed gone (404 or a deleted stub) are
/// marked deleted. Records listed against held.
fn reconcile(run: &Run, resource: &Resource) -> Result<(), ApiError> {
    let Some(spec) = stripe_sync_core::mapping::spec_for(resource.object) else { return Ok(()) };
    let account = run.account.as_deref();
    let missing: Vec<String> = BackgroundWorker::transaction(|| {
        // A set difference, not NOT EXISTS: both sides were just filled, so their
        // statistics are missing, and an anti-join planned on that can go
        // quadratic; EXCEPT is hashed or sorted whatever the estimates.
        let sql = format!(
            "SELECT t.id FROM stripe_sync.{} t
              WHERE NOT t._deleted AND t._account_id IS NOT DISTINCT FROM $2
             EXCEPT
             SELECT s.id FROM stripe_sync.sync_seen s
              WHERE s.account = coalesce($2, '') AND s.object = $1",
            spec.table
        );
        Spi::connect(|c| {
            c.select(&sql, None, &[resource.object.into(), account.into()])
                .expect("missing rows")
                .filter_map(|r| r.get::<String>(1).ok().flatten())
                .collect()
        })
    });
    let mut gone = Vec::new();
    for id in &missing {
        check_for_interrupts!();
        match get(&format!("{}/{id}", resource.path), &[], account) {
            Ok(v) if v.get("deleted").and_then(Value::as_bool) == Some(true) => gone.push(v),
            Ok(_) => {} // still there, just not listed (e.g. a filter); keep it
            Err(e) if e.status == Some(404) => {
                gone.push(serde_json::json!({"id": id, "object": resource.object, "deleted": true}))
            }
            Err(e) => return Err(e),
        }
    }
    BackgroundWorker::transaction(|| {
        apply::apply_objects(&gone, stripe::now(), account);
        let sql = format!(
            "UPDATE stripe_sync.sync_runs r
                SET deleted = $2,
                    listed = (SELECT count(*) FROM stripe_sync.sync_seen s
                               WHERE s.account = coalesce($3, '') AND s.object = $4),
                    rows_held = (SELECT count(*) FROM stripe_sync.{} t
                                  WHERE NOT t._deleted AND t._account_id IS NOT DISTINCT FROM $3)
              WHERE r.id = $1",
            spec.table
        );
        let args: [DatumWithOid; 4] =
            [run.id.into(), (gone.len() as i64).into(), account.into(), resource.object.into()];
        Spi::run_with_args(&sql, &args).expect("record reconciliation");
        Spi::run_with_args(
            "DELETE FROM stripe_sync.sync_seen WHERE account = coalesce($1, '') AND object = $2",
            &[account.into(), resource.object.into()],
        )
        .expect("clear seen");
    });
    Ok(())
}

/// Lists /v1/events created at or after the newest event seen (the same
/// second again: duplicates are harmless) and queues those not yet stored.
/// Returns how many were new.
pub fn catch_up(run: &Run) -> Result<i64, ApiError> {
    let account = run.account.as_deref();
    let since = BackgroundWorker::transaction(|| {
        let since = newest_event_seen();
        // The run records where it started from; the status view flags a gap
        // when that is beyond Stripe's window.
        Spi::run_with_args(
            "UPDATE stripe_sync.sync_runs SET created_after = to_timestamp($2) WHERE id = $1",
            &[run.id.into(), since.map(|t| t as f64).into()],
        )
        .expect("record catch-up start");
        since
    });
    let window_start = chrono::Utc::now().timestamp() - EVENT_WINDOW_SECONDS;
    let created_gte = since.map_or(window_start, |t| t.max(window_start));
    let mut after: Option<String> = None;
    let mut queued = 0i64;
    loop {
        check_for_interrupts!();
        let query = pagination::list_query(&[], after.as_deref(), Some(created_gte));
        let page = list_page("/v1/events", &query, account)?;
        let last = page.last_id().map(str::to_owned);
        let new = BackgroundWorker::transaction(|| {
            let mut new = 0;
            for event in &page.data {
                let text = event.to_string();
                // Events from the API need no signature; they still must be events.
                let Ok(meta) = parse_event(&text, usize::MAX) else { continue };
                let data = jsonb::from_text(&text).unwrap_or_else(|e| {
                    pgrx::error!("event {} from the API cannot be stored as jsonb: {e}", meta.id)
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
        queued += new;
        if !page.has_more || last.is_none() {
            break;
        }
        after = last;
    }
    Ok(queued)
}

/// Unix seconds of the newest event stored, if any.
pub fn newest_event_seen() -> Option<i64> {
    Spi::get_one::<i64>("SELECT extract(epoch FROM max(created))::bigint FROM stripe_sync.events")
        .ok()
        .flatten()
}
