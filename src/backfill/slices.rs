//! A backfill cut by created time: after the first page, what is left of the
//! listing is cut into slices (`stripe_sync.sync_slices`) that the leader and
//! helper job workers claim and page at once, each slice with its own cursor.

use super::{commit_page, fetch};
use crate::runs::{self, Run};
use crate::{launch, stripe};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::job::Job;
use stripe_sync_core::objects::Resource;
use stripe_sync_core::pagination::{self, RawPage};
use stripe_sync_core::slices::{self, Oldest, Slice};

/// After the first page of a new run: cuts what is left of the listing (from
/// the oldest object, or the run's created filter, to the first page's oldest)
/// into slices and stores them. False when it cannot be cut: then the run
/// pages on alone, as with one worker.
pub(super) fn plan_slices(
    run: &Run,
    resource: &Resource,
    start: &super::Start,
    first: &RawPage,
    workers: usize,
) -> Result<bool, ApiError> {
    let Some(newest_left) = first.min_created() else { return Ok(false) };
    let account = run.account.as_deref();
    let oldest = match start.created_gte {
        Some(t) => t,
        None => {
            let probe = |before: i64| {
                let query = slices::probe_query(resource.list_params, before);
                let page = stripe::request_with(
                    stripe::Method::Get,
                    resource.path,
                    &query,
                    account,
                    pagination::scan_page,
                )?;
                // An object without created cannot be placed: as if the filter were ignored.
                Ok(page.items.first().map(|i| i.created.unwrap_or(i64::MAX)))
            };
            match slices::oldest_created(0, newest_left, probe)? {
                Oldest::At(t) => t,
                Oldest::FilterIgnored => {
                    warning!(
                        "stripe_sync: {} cannot be listed by created time here (the API ignores created[lt]); one worker pages it",
                        resource.path
                    );
                    return Ok(false);
                }
            }
        }
    };
    let parts = slices::split(oldest, newest_left + 1, workers * slices::SLICES_PER_WORKER);
    if parts.len() < 2 {
        return Ok(false);
    }
    // The newest slice goes on after the first page; the others start afresh.
    let cursor = first.last_id();
    BackgroundWorker::transaction(|| store_slices(run, resource.object, &parts, cursor));
    Ok(true)
}

/// After the first page of a new run with one job worker: what is left of
/// the listing (from the run's created filter, or the epoch, to the first
/// page's oldest) is one slice, which `paced` cuts as the answers show where
/// the objects are. False when the page's objects have no created time.
pub(super) fn one_slice(
    run: &Run,
    resource: &Resource,
    start: &super::Start,
    first: &RawPage,
) -> bool {
    let Some(oldest_seen) = first.min_created() else { return false };
    let floor = start.created_gte.unwrap_or(0).min(oldest_seen);
    let part = [Slice { gte: floor, lt: oldest_seen + 1 }];
    BackgroundWorker::transaction(|| store_slices(run, resource.object, &part, first.last_id()));
    true
}

fn store_slices(run: &Run, object: &str, parts: &[Slice], first_cursor: Option<&str>) {
    let account = run.account_key();
    let gte: Vec<i64> = parts.iter().map(|s| s.gte).collect();
    let lt: Vec<i64> = parts.iter().map(|s| s.lt).collect();
    let args: [DatumWithOid; 6] = [
        account.into(),
        object.into(),
        gte.into(),
        lt.into(),
        parts[0].gte.into(),
        first_cursor.into(),
    ];
    Spi::run_with_args(
        "INSERT INTO stripe_sync.sync_slices (account, object, created_gte, created_lt, starting_after)
         SELECT $1, $2, g, l, CASE WHEN g = $5 THEN $6 END FROM unnest($3::bigint[], $4::bigint[]) AS s(g, l)",
        &args,
    )
    .expect("store slices");
}

/// Whether an interrupted run left slices to resume.
pub(super) fn has_slices(run: &Run, object: &str) -> bool {
    let account = run.account_key();
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM stripe_sync.sync_slices WHERE account = $1 AND object = $2)",
        &[account.into(), object.into()],
    )
    .expect("slices of the run")
    .unwrap_or(false)
}

/// The leader's part of a sliced run: starts helper job workers, pages slices
/// itself until none is left, waits for the helpers, and fails the run if a
/// slice is not done (a helper failed or stopped: the next call resumes).
pub(super) fn run_slices(run: &Run, resource: &Resource, workers: usize) -> Result<i64, ApiError> {
    let left = BackgroundWorker::transaction(|| release_slices(run, resource.object));
    let helpers: Vec<_> = (1..workers.min(left as usize))
        .map_while(|_| {
            launch::launch(Job::Slices {
                object: resource.object.to_owned(),
                run: run.id,
                leader: unsafe { pg_sys::MyProcPid },
                account: run.account.clone(),
            })
        })
        .collect();
    BackgroundWorker::transaction(|| runs::record_workers(run.id, helpers.len() as i32 + 1));
    let mine = match work_slices(run, resource, None) {
        Ok(n) => n,
        Err(e) => {
            launch::stop(helpers);
            return Err(e);
        }
    };
    launch::wait_for(&helpers);
    let (undone, error, code) =
        BackgroundWorker::transaction(|| slice_outcome(run, resource.object));
    if undone > 0 {
        let message = error.unwrap_or_else(|| {
            format!(
                "a backfill worker stopped with {undone} slice(s) of {} left; call again to resume",
                resource.path
            )
        });
        crate::errors::reraise(code.as_deref().unwrap_or("57P01"), message);
    }
    Ok(mine)
}

/// Pages slices until none is left to claim. A helper (`leader` set) also
/// stops when its leader is gone; every worker stops when another has failed.
pub fn work_slices(run: &Run, resource: &Resource, leader: Option<i32>) -> Result<i64, ApiError> {
    let account = run.account.as_deref();
    let leader_gone =
        || leader.is_some_and(|pid| unsafe { pg_sys::BackendPidGetProc(pid).is_null() });
    let mut total = 0i64;
    while !leader_gone() {
        check_for_interrupts!();
        let Some((slice, mut after)) =
            BackgroundWorker::transaction(|| claim_slice(run, resource.object))
        else {
            break;
        };
        loop {
            check_for_interrupts!();
            let query = slices::slice_query(resource.list_params, after.as_deref(), slice);
            let f = fetch(resource, &query, account)?;
            let last = f.page.last_id().map(str::to_owned);
            let done = !f.page.has_more || last.is_none();
            let high = f.page.max_created();
            let (n, failed) = commit_page(run, &f, || {
                save_slice(run, resource.object, slice, last.as_deref(), done, high)
            });
            total += n;
            if failed || leader_gone() {
                return Ok(total);
            }
            if done {
                break;
            }
            after = last;
        }
    }
    Ok(total)
}

/// At the start of a sliced run (new or resumed): no slice is claimed any more
/// by the workers of an earlier run. Returns the slices left to page.
fn release_slices(run: &Run, object: &str) -> i64 {
    let account = run.account_key();
    Spi::get_one_with_args::<i64>(
        "WITH r AS (
             UPDATE stripe_sync.sync_slices SET claimed_by = NULL
              WHERE account = $1 AND object = $2 RETURNING done)
         SELECT count(*) FILTER (WHERE NOT done) FROM r",
        &[account.into(), object.into()],
    )
    .expect("release slices")
    .unwrap_or(0)
}

/// Claims the newest slice nobody pages, unless a worker of the run failed.
/// The pick is a MATERIALIZED CTE, run once: as a subquery the planner may put
/// it on the inner side of a nested loop and run it again for every row of the
/// table, and a rescan skips the row this statement has just claimed (its own
/// update) and picks the next, so one call claimed two slices and paged only
/// the first; the other stayed claimed and was never listed.
fn claim_slice(run: &Run, object: &str) -> Option<(Slice, Option<String>)> {
    let account = run.account_key();
    let args: [DatumWithOid; 4] =
        [account.into(), object.into(), unsafe { pg_sys::MyProcPid }.into(), run.id.into()];
    Spi::connect_mut(|c| {
        let rows = c
            .update(
                "WITH c AS MATERIALIZED (
                     SELECT created_gte FROM stripe_sync.sync_slices
                      WHERE account = $1 AND object = $2 AND NOT done AND claimed_by IS NULL
                        AND NOT EXISTS (SELECT 1 FROM stripe_sync.sync_runs r
                                         WHERE r.id = $4 AND r.error IS NOT NULL)
                      ORDER BY created_gte DESC LIMIT 1 FOR UPDATE SKIP LOCKED)
                 UPDATE stripe_sync.sync_slices s SET claimed_by = $3
                   FROM c
                  WHERE s.account = $1 AND s.object = $2 AND s.created_gte = c.created_gte
                 RETURNING s.created_gte, s.created_lt, s.starting_after",
                None,
                &args,
            )
            .expect("claim a slice");
        if rows.is_empty() {
            return None;
        }
        let row = rows.first();
        let gte = row.get::<i64>(1).ok().flatten()?;
        let lt = row.get::<i64>(2).ok().flatten()?;
        Some((Slice { gte, lt }, row.get::<String>(3).ok().flatten()))
    })
}

pub(super) fn save_slice(
    run: &Run,
    object: &str,
    slice: Slice,
    last: Option<&str>,
    done: bool,
    high: Option<i64>,
) {
    let account = run.account_key();
    let args: [DatumWithOid; 6] =
        [account.into(), object.into(), slice.gte.into(), last.into(), done.into(), high.into()];
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_slices
            SET starting_after = coalesce($4, starting_after), done = $5,
                high_water = greatest(high_water, $6)
          WHERE account = $1 AND object = $2 AND created_gte = $3",
        &args,
    )
    .expect("save slice");
}

/// Slices not done, and the error a worker of the run recorded, if any.
fn slice_outcome(run: &Run, object: &str) -> (i64, Option<String>, Option<String>) {
    let account = run.account_key();
    Spi::connect(|c| {
        let row = c
            .select(
                "SELECT (SELECT count(*) FROM stripe_sync.sync_slices
                          WHERE account = $1 AND object = $2 AND NOT done),
                        r.error, r.error_code
                   FROM stripe_sync.sync_runs r WHERE r.id = $3",
                None,
                &[account.into(), object.into(), run.id.into()],
            )
            .expect("slices left")
            .first();
        (
            row.get::<i64>(1).ok().flatten().unwrap_or(0),
            row.get::<String>(2).ok().flatten(),
            row.get::<String>(3).ok().flatten(),
        )
    })
}
