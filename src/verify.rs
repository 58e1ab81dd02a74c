//! `verify(object, account, repair)`: lists one object type from the API and
//! compares it with the mirror, page by page, without writing to the mirror
//! (or, with `repair`, writing only what differs). Differences go to
//! `stripe_sync.drift`, counts to the run's row in `sync_runs`. Runs in a job
//! worker (jobs.rs) like a backfill: HTTP between transactions.

use crate::listing::{complete_children, get, list_of_parent, list_page, parents_after};
use crate::runs::{Run, record_page};
use crate::{apply, stripe};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use serde_json::Value;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::mapping::{ObjectSpec, spec_for};
use stripe_sync_core::objects::{Listing, Resource};
use stripe_sync_core::pagination;

/// Runs one verify of `resource`; returns how many objects the API listed.
pub fn verify(run: &Run, resource: &Resource, repair: bool) -> Result<i64, ApiError> {
    let spec = spec_for(resource.object).filter(|_| resource.verifiable()).ok_or_else(|| {
        ApiError::InvalidArgument(format!(
            "{} cannot be verified object by object",
            resource.object
        ))
    })?;
    let account = run.account.as_deref();
    let mut listed = 0i64;
    let mut compare = |objects: Vec<Value>, fetched_at: TimestampWithTimeZone| {
        let n = objects.len() as i64;
        listed += n;
        let drifted = BackgroundWorker::transaction(|| {
            let drifted = compare_chunk(run, spec, &objects, fetched_at);
            record_page(run.id, n);
            drifted
        });
        if repair && !drifted.is_empty() {
            let fix: Vec<Value> = objects
                .into_iter()
                .filter(|o| {
                    o.get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| drifted.iter().any(|d| d == id))
                })
                .collect();
            BackgroundWorker::transaction(|| {
                apply::apply_objects(&fix, fetched_at, account);
                mark_repaired(run, &drifted);
            });
        }
    };
    if let Listing::PerParent { parent_table, .. } = resource.listing {
        let mut after: Option<String> = None;
        loop {
            let parents = BackgroundWorker::transaction(|| {
                parents_after(parent_table, run.account_key(), after.as_deref(), None)
            });
            let Some((last, _)) = parents.last().cloned() else { break };
            let fetched_at = stripe::now();
            let mut objects = Vec::new();
            for (parent, _) in &parents {
                objects.extend(list_of_parent(resource, parent, account)?.unwrap_or_default());
            }
            compare(objects, fetched_at);
            after = Some(last);
        }
    } else {
        let mut after: Option<String> = None;
        loop {
            check_for_interrupts!();
            let fetched_at = stripe::now();
            let query = pagination::list_query(resource.list_params, after.as_deref(), None);
            let mut page = list_page(resource.path, &query, account)?;
            complete_children(&mut page.data, account)?;
            let last = page.last_id().map(str::to_owned);
            let more = page.has_more;
            compare(page.data, fetched_at);
            if !more || last.is_none() {
                break;
            }
            after = last;
        }
    }
    extras(run, spec, resource, repair)?;
    BackgroundWorker::transaction(|| finish(run, listed));
    Ok(listed)
}

/// Compares listed objects (fetched at `fetched_at`) with their rows, records
/// their ids as listed, and each difference in `drift`. A row written at or
/// after the fetch's second, or with an event of its object still pending,
/// is newer than (or about to be) what was listed: not compared. Returns the
/// ids of the differences found.
fn compare_chunk(
    run: &Run,
    spec: &ObjectSpec,
    objects: &[Value],
    fetched_at: TimestampWithTimeZone,
) -> Vec<String> {
    let text = serde_json::to_string(objects).expect("objects serialize");
    let sql = format!(
        "WITH listed AS (
             SELECT DISTINCT ON (o->>'id') o->>'id' AS id, o
               FROM jsonb_array_elements($1::jsonb) AS o
              WHERE o->>'object' = '{object}' AND o->>'id' IS NOT NULL
              ORDER BY o->>'id'
         ), seen AS (
             INSERT INTO stripe_sync.verify_listed (account, run, id)
             SELECT $2, $3, id FROM listed ON CONFLICT DO NOTHING
         ), compared AS (
             SELECT l.id, l.o, t.data,
                    CASE WHEN t.id IS NULL OR (t._deleted AND NOT stripe_sync._is_deletion(NULL, l.o)) THEN 'missing'
                         WHEN NOT t._deleted AND t.data <> l.o THEN 'differs' END AS kind
               FROM listed l
               LEFT JOIN stripe_sync.{table} t ON t._account_id = $2 AND t.id = l.id
              WHERE (t.id IS NULL OR date_trunc('second', coalesce(t._last_event_at, '-infinity')) < date_trunc('second', $4))
                AND NOT EXISTS (SELECT 1 FROM stripe_sync.events e
                                 WHERE e.status = 'pending' AND e.object_type = '{object}'
                                   AND e.object_id = l.id AND coalesce(e.account, '') = $2)
         )
         INSERT INTO stripe_sync.drift (account, run, id, object, kind, fields)
         SELECT $2, $3, c.id, '{object}', c.kind,
                CASE WHEN c.kind = 'differs' THEN
                     ARRAY(SELECT k FROM (SELECT jsonb_object_keys(c.o) UNION SELECT jsonb_object_keys(c.data)) AS x(k)
                            WHERE c.o->k IS DISTINCT FROM c.data->k ORDER BY k) END
           FROM compared c
          WHERE c.kind IS NOT NULL
         ON CONFLICT DO NOTHING
         RETURNING id",
        object = spec.object,
        table = spec.table,
    );
    let args: [DatumWithOid; 4] =
        [text.as_str().into(), run.account_key().into(), run.id.into(), fetched_at.into()];
    Spi::connect_mut(|c| {
        c.update(&sql, None, &args)
            .expect("compare with the mirror")
            .filter_map(|r| r.get::<String>(1).ok().flatten())
            .collect()
    })
}

/// Live rows of the account that the listing did not return, written before
/// the run started (a row written since is newer than the listing), each
/// retrieved: gone (404, or a deleted stub) is extra; still there and
/// different is a difference. With `repair` each is written to match.
fn extras(run: &Run, spec: &ObjectSpec, resource: &Resource, repair: bool) -> Result<(), ApiError> {
    let account = run.account.as_deref();
    let sql = format!(
        "SELECT t.id FROM stripe_sync.{table} t
          WHERE t._account_id = $1 AND NOT t._deleted
            AND coalesce(t._last_event_at, '-infinity')
                < (SELECT r.started_at FROM stripe_sync.sync_runs r WHERE r.id = $2)
            AND NOT EXISTS (SELECT 1 FROM stripe_sync.verify_listed v
                             WHERE v.account = $1 AND v.run = $2 AND v.id = t.id)",
        table = spec.table
    );
    let candidates: Vec<String> = BackgroundWorker::transaction(|| {
        let args: [DatumWithOid; 2] = [run.account_key().into(), run.id.into()];
        Spi::connect(|c| {
            c.select(&sql, None, &args)
                .expect("rows not listed")
                .filter_map(|r| r.get::<String>(1).ok().flatten())
                .collect()
        })
    });
    for id in candidates {
        check_for_interrupts!();
        let fetched_at = stripe::now();
        let Some(path) = resource.retrieve_path(&id) else { continue };
        let object = match get(&path, &[], account) {
            Ok(v) if v.get("deleted").and_then(Value::as_bool) == Some(true) => None,
            Ok(v) => Some(v),
            Err(e) if e.status() == Some(404) => None,
            Err(e) => return Err(e),
        };
        let fix = match object {
            Some(v) => {
                let one = std::slice::from_ref(&v);
                let differs =
                    !BackgroundWorker::transaction(|| compare_chunk(run, spec, one, fetched_at))
                        .is_empty();
                differs.then_some(v)
            }
            None => {
                BackgroundWorker::transaction(|| record_extra(run, spec, &id));
                Some(stripe_sync_core::mapping::tombstone(spec.object, &id))
            }
        };
        if repair && let Some(fix) = fix {
            BackgroundWorker::transaction(|| {
                apply::apply_objects(&[fix], fetched_at, account);
                mark_repaired(run, std::slice::from_ref(&id));
            });
        }
    }
    Ok(())
}

fn record_extra(run: &Run, spec: &ObjectSpec, id: &str) {
    let args: [DatumWithOid; 4] =
        [run.account_key().into(), run.id.into(), id.into(), spec.object.into()];
    Spi::run_with_args(
        "INSERT INTO stripe_sync.drift (account, run, id, object, kind) VALUES ($1, $2, $3, $4, 'extra')
         ON CONFLICT DO NOTHING",
        &args,
    )
    .expect("record an extra row");
}

fn mark_repaired(run: &Run, ids: &[String]) {
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let args: [DatumWithOid; 3] = [run.account_key().into(), run.id.into(), ids.into()];
    Spi::run_with_args(
        "UPDATE stripe_sync.drift SET repaired_at = now() WHERE account = $1 AND run = $2 AND id = ANY($3)",
        &args,
    )
    .expect("mark repaired");
}

/// Counts the run's differences into its row; drops its scratch.
fn finish(run: &Run, listed: i64) {
    let args: [DatumWithOid; 3] = [run.id.into(), run.account_key().into(), listed.into()];
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_runs r
            SET listed = $3,
                missing = d.missing, extra = d.extra, differs = d.differs, repaired = d.repaired
           FROM (SELECT count(*) FILTER (WHERE kind = 'missing') AS missing,
                        count(*) FILTER (WHERE kind = 'extra') AS extra,
                        count(*) FILTER (WHERE kind = 'differs') AS differs,
                        count(*) FILTER (WHERE repaired_at IS NOT NULL) AS repaired
                   FROM stripe_sync.drift WHERE account = $2 AND run = $1) AS d
          WHERE r.id = $1",
        &args,
    )
    .expect("count the differences");
    Spi::run_with_args(
        "DELETE FROM stripe_sync.verify_listed WHERE account = $2 AND run = $1",
        &args[..2],
    )
    .expect("drop the scratch");
}

/// One summary row of `verify()`: the counts the run recorded.
pub struct Summary {
    pub listed: i64,
    pub missing: i64,
    pub extra: i64,
    pub differs: i64,
    pub repaired: i64,
}

/// The counts of run `id`.
pub fn summary(id: i64) -> Summary {
    Spi::connect(|c| {
        let row = c
            .select(
                "SELECT listed, missing, extra, differs, repaired FROM stripe_sync.sync_runs WHERE id = $1",
                None,
                &[id.into()],
            )
            .expect("verify counts")
            .first();
        let n = |i| row.get::<i64>(i).ok().flatten().unwrap_or(0);
        Summary { listed: n(1), missing: n(2), extra: n(3), differs: n(4), repaired: n(5) }
    })
}
