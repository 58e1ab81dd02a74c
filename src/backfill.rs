//! Backfill pages through a list endpoint (or, for payment methods and tax
//! ids, through each customer's), applying each page with the same
//! statements as events and committing it together with its cursor, so an
//! interrupted run resumes at the next page. It runs inside a job worker
//! (jobs.rs): HTTP happens between transactions, never inside one.

use crate::{apply, stripe};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use serde_json::Value;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::objects::{self, Resource};
use stripe_sync_core::pagination::{self, Page, RawPage};
use stripe_sync_core::slices::{self, Oldest, Slice};

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

pub(crate) fn get(
    path: &str,
    query: &[(String, String)],
    account: Option<&str>,
) -> Result<Value, ApiError> {
    stripe::request(stripe::Method::Get, path, query, account)
}

/// Fetches a list page.
pub(crate) fn list_page(
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

/// Where a backfill starts: resuming an interrupted run, or a new one.
struct Start {
    starting_after: Option<String>,
    created_gte: Option<i64>,
    full: bool,
    resumed: bool,
}

/// A page as fetched: its text taken apart, and its tree when a child list
/// had to be completed first.
struct Fetched {
    page: RawPage,
    completed: Option<Page>,
    fetched_at: TimestampWithTimeZone,
}

/// Fetches one list page (HTTP only, no transaction) and completes any child
/// list that stopped short in the page's tree; otherwise the text goes to the
/// database as it came.
fn fetch(
    resource: &Resource,
    query: &[(String, String)],
    account: Option<&str>,
) -> Result<Fetched, ApiError> {
    let fetched_at = stripe::now();
    let page = stripe::request_with(
        stripe::Method::Get,
        resource.path,
        query,
        account,
        pagination::scan_page,
    )?;
    let completed = if page.has_partial_children() {
        let mut tree = pagination::parse_page(&page.body).map_err(ApiError::network)?;
        complete_children(&mut tree.data, account)?;
        Some(tree)
    } else {
        None
    };
    Ok(Fetched { page, completed, fetched_at })
}

/// Applies a fetched page and commits it together with what `save` records
/// (where the listing stands). Returns the objects applied, and whether
/// another worker of the run has failed (time to stop).
///
/// The commit does not wait for its WAL to reach the disk
/// (`synchronous_commit = off` for this transaction only): a crash can lose
/// only whole page transactions, each with the cursor that points past it, so
/// the resumed run lists those pages again. The run's last transaction
/// (`finish_cursor`) waits, and the flush covers every page before it.
fn commit_page(
    run: &Run,
    f: &Fetched,
    save: impl FnOnce() + std::panic::UnwindSafe + std::panic::RefUnwindSafe,
) -> (i64, bool) {
    let n = f.page.items.len() as i64;
    let failed = BackgroundWorker::transaction(move || {
        Spi::run("SET LOCAL synchronous_commit = off").expect("set synchronous_commit");
        match &f.completed {
            Some(tree) => apply::apply_objects(&tree.data, f.fetched_at, run.account.as_deref()),
            None if f.page.object_types().contains(&objects::ACCOUNT) => {
                crate::accounts::apply_listed(&f.page.body)
            }
            None => apply::apply_page(&f.page, f.fetched_at, run.account.as_deref()),
        };
        save();
        record_page(run.id, n)
    });
    (n, failed)
}

/// Runs one backfill of `resource`; returns the objects this process applied.
/// With `stripe_sync.backfill_workers` above 1, what the first page leaves is
/// cut into slices of created time that job workers page through at once.
pub fn backfill(
    run: &Run,
    resource: &Resource,
    created_after: Option<i64>,
) -> Result<i64, ApiError> {
    let account = run.account.as_deref();
    let start = BackgroundWorker::transaction(|| begin_cursor(run, resource.object, created_after));
    if per_customer(resource) {
        let total = backfill_per_customer(run, resource, &start)?;
        if start.full {
            reconcile(run, resource)?;
        }
        BackgroundWorker::transaction(|| finish_cursor(run, resource.object));
        return Ok(total);
    }
    let workers = crate::config::backfill_workers();
    let mut sliced =
        start.resumed && BackgroundWorker::transaction(|| has_slices(run, resource.object));
    let mut after = start.starting_after.clone();
    let mut total = 0i64;
    while !sliced {
        check_for_interrupts!();
        let query =
            pagination::list_query(resource.list_params, after.as_deref(), start.created_gte);
        let f = fetch(resource, &query, account)?;
        let last = f.page.last_id().map(str::to_owned);
        let high = f.page.max_created();
        let (n, _) =
            commit_page(run, &f, || save_cursor(run, resource.object, last.as_deref(), high));
        total += n;
        if !f.page.has_more || last.is_none() {
            break;
        }
        if workers > 1 && !start.resumed && after.is_none() {
            sliced = plan_slices(run, resource, &start, &f.page, workers)?;
        }
        after = last;
    }
    if sliced {
        total += run_slices(run, resource, workers)?;
    }
    if start.full {
        reconcile(run, resource)?;
    }
    BackgroundWorker::transaction(|| finish_cursor(run, resource.object));
    Ok(total)
}

pub(crate) fn per_customer(resource: &Resource) -> bool {
    matches!(resource.listing, objects::Listing::PerCustomer(_))
}

/// Customers whose objects one transaction commits together.
const CUSTOMERS_PER_COMMIT: i64 = 20;

/// A per-customer listing (payment methods, tax ids): every customer of the
/// account in the mirror (those created since the last completed run, for
/// an incremental one), in id order, each listed in full; committed every
/// [`CUSTOMERS_PER_COMMIT`] customers with the last one's id as the cursor,
/// so an interrupted run resumes after it. A customer Stripe no longer has
/// (404) has nothing to list: its own deletion reaches the mirror by event
/// or by the customers' reconciliation.
fn backfill_per_customer(run: &Run, resource: &Resource, start: &Start) -> Result<i64, ApiError> {
    let account = run.account.as_deref();
    let mut after = start.starting_after.clone();
    let mut total = 0i64;
    loop {
        let customers = BackgroundWorker::transaction(|| {
            customers_after(run.account_key(), after.as_deref(), start.created_gte)
        });
        let Some((last, _)) = customers.last().cloned() else { break };
        let fetched_at = stripe::now();
        let mut objects = Vec::new();
        for (customer, _) in &customers {
            objects.extend(list_of_customer(resource, customer, account)?);
        }
        let high = customers.iter().filter_map(|(_, created)| *created).max();
        let n = objects.len() as i64;
        BackgroundWorker::transaction(|| {
            Spi::run("SET LOCAL synchronous_commit = off").expect("set synchronous_commit");
            apply::apply_objects(&objects, fetched_at, account);
            save_cursor(run, resource.object, Some(&last), high);
            record_page(run.id, n);
        });
        total += n;
        if (customers.len() as i64) < CUSTOMERS_PER_COMMIT {
            break;
        }
        after = Some(last);
    }
    Ok(total)
}

/// Every object of one customer's list (e.g. its payment methods);
/// nothing when Stripe no longer has the customer.
pub(crate) fn list_of_customer(
    resource: &Resource,
    customer: &str,
    account: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let Some(path) = resource.customer_path(customer) else { return Ok(Vec::new()) };
    let mut objects = Vec::new();
    let mut after: Option<String> = None;
    loop {
        check_for_interrupts!();
        let query = pagination::list_query(resource.list_params, after.as_deref(), None);
        let page = match list_page(&path, &query, account) {
            Ok(page) => page,
            Err(e) if e.status == Some(404) => break,
            Err(e) => return Err(e),
        };
        after = page.last_id().map(str::to_owned);
        let more = page.has_more;
        objects.extend(page.data);
        if !more || after.is_none() {
            break;
        }
    }
    Ok(objects)
}

/// The next customers of `account` in the mirror after `after` (by id),
/// created at or after `created_gte` if given, with their created times.
pub(crate) fn customers_after(
    account: &str,
    after: Option<&str>,
    created_gte: Option<i64>,
) -> Vec<(String, Option<i64>)> {
    let args: [DatumWithOid; 4] =
        [account.into(), after.into(), created_gte.into(), CUSTOMERS_PER_COMMIT.into()];
    Spi::connect(|c| {
        c.select(
            "SELECT id, extract(epoch FROM created)::bigint FROM stripe_sync.customers
              WHERE _account_id = $1 AND NOT _deleted
                AND ($2::text IS NULL OR id > $2)
                AND ($3::bigint IS NULL OR created >= to_timestamp($3))
              ORDER BY id LIMIT $4",
            None,
            &args,
        )
        .expect("customers to list")
        .filter_map(|r| Some((r.get::<String>(1).ok().flatten()?, r.get::<i64>(2).ok().flatten())))
        .collect()
    })
}

/// After the first page of a new run: cuts what is left of the listing (from
/// the oldest object, or the run's created filter, to the first page's oldest)
/// into slices and stores them. False when it cannot be cut: then the run
/// pages on alone, as with one worker.
fn plan_slices(
    run: &Run,
    resource: &Resource,
    start: &Start,
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

fn has_slices(run: &Run, object: &str) -> bool {
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
fn run_slices(run: &Run, resource: &Resource, workers: usize) -> Result<i64, ApiError> {
    let left = BackgroundWorker::transaction(|| release_slices(run, resource.object));
    let helpers: Vec<_> = (1..workers.min(left as usize))
        .map_while(|_| crate::jobs::start_slice_helper(run, resource.object))
        .collect();
    BackgroundWorker::transaction(|| {
        Spi::run_with_args(
            "UPDATE stripe_sync.sync_runs SET workers = $2 WHERE id = $1",
            &[run.id.into(), (helpers.len() as i32 + 1).into()],
        )
        .expect("record workers")
    });
    let mine = match work_slices(run, resource, None) {
        Ok(n) => n,
        Err(e) => {
            crate::jobs::stop_helpers(helpers);
            return Err(e);
        }
    };
    crate::jobs::wait_for_helpers(&helpers);
    let (undone, error, code) =
        BackgroundWorker::transaction(|| slice_outcome(run, resource.object));
    if undone > 0 {
        let message = error.unwrap_or_else(|| {
            format!(
                "a backfill worker stopped with {undone} slice(s) of {} left; call again to resume",
                resource.path
            )
        });
        crate::errors::raise_with_code(
            crate::subxact::sqlstate_from_text(code.as_deref().unwrap_or("57P01")),
            message,
        );
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

fn save_slice(
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

/// A helper's failure, for its leader to raise: the first one recorded stays.
pub fn record_failure(run_id: i64, message: &str, code: &str) {
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_runs SET error = coalesce(error, $2), error_code = coalesce(error_code, $3)
          WHERE id = $1",
        &[run_id.into(), message.into(), code.into()],
    )
    .expect("record a helper's failure");
}

fn begin_cursor(run: &Run, object: &str, created_after: Option<i64>) -> Start {
    let account = run.account_key();
    Spi::connect_mut(|c| {
        let args: [DatumWithOid; 2] = [account.into(), object.into()];
        c.update(
            "INSERT INTO stripe_sync.sync_cursors (account, object) VALUES ($1, $2) ON CONFLICT (account, object) DO NOTHING",
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
        let args: [DatumWithOid; 6] = [
            account.into(),
            object.into(),
            start.created_gte.map(|t| t as f64).into(),
            start.starting_after.as_deref().into(),
            start.resumed.into(),
            run.id.into(),
        ];
        // A resumed run keeps the start of the run it continues: the pages
        // committed before the interruption were fetched after that.
        c.update(
            "UPDATE stripe_sync.sync_cursors
                SET in_progress = true, starting_after = $4,
                    created_after = to_timestamp($3),
                    run_high_water = CASE WHEN $5 THEN run_high_water END,
                    run_started_at = CASE WHEN $5 THEN run_started_at
                                          ELSE (SELECT started_at FROM stripe_sync.sync_runs WHERE id = $6) END
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
                "DELETE FROM stripe_sync.sync_slices WHERE account = $1 AND object = $2",
                None,
                &args[..2],
            )
            .expect("clear what an abandoned run left");
        }
        start
    })
}

fn save_cursor(run: &Run, object: &str, last: Option<&str>, high: Option<i64>) {
    let account = run.account_key();
    let args: [DatumWithOid; 4] = [account.into(), object.into(), last.into(), high.into()];
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_cursors
            SET starting_after = coalesce($3, starting_after),
                run_high_water = greatest(run_high_water, $4)
          WHERE account = $1 AND object = $2",
        &args,
    )
    .expect("save cursor");
}

/// Counts a committed page; returns whether a worker of the run has failed.
pub(crate) fn record_page(run_id: i64, n: i64) -> bool {
    Spi::get_one_with_args::<bool>(
        "UPDATE stripe_sync.sync_runs SET pages = pages + 1, objects = objects + $2 WHERE id = $1
         RETURNING error IS NOT NULL",
        &[run_id.into(), n.into()],
    )
    .expect("record page")
    .unwrap_or(false)
}

fn finish_cursor(run: &Run, object: &str) {
    let account = run.account_key();
    let args: [DatumWithOid; 2] = [account.into(), object.into()];
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_cursors
            SET in_progress = false, starting_after = NULL, created_after = NULL, run_started_at = NULL,
                high_water = greatest(high_water, run_high_water,
                                      (SELECT max(s.high_water) FROM stripe_sync.sync_slices s
                                        WHERE s.account = $1 AND s.object = $2)),
                run_high_water = NULL, last_completed_at = now()
          WHERE account = $1 AND object = $2",
        &args,
    )
    .expect("finish cursor");
    Spi::run_with_args(
        "DELETE FROM stripe_sync.sync_slices WHERE account = $1 AND object = $2",
        &args,
    )
    .expect("drop the run's slices");
    crate::accounts::touch(account, crate::accounts::Done::Backfill);
}

/// After a full run: rows of this account that the API no longer listed are
/// retrieved one by one; those confirmed gone (404 or a deleted stub) are
/// marked deleted. Records listed against held.
///
/// A listed object was applied as an update made at its fetch time, or left
/// alone because its row holds something newer, so its row was last written
/// at or after the run's start (`sync_cursors.run_started_at`, kept across a
/// resume). The rows written before are the ones the listing did not return.
/// Rows that an event created after the run's start wrote are left out too:
/// that event is newer than anything the listing could tell.
fn reconcile(run: &Run, resource: &Resource) -> Result<(), ApiError> {
    let Some(spec) = stripe_sync_core::mapping::spec_for(resource.object) else { return Ok(()) };
    let account = run.account.as_deref();
    let args: [DatumWithOid; 3] = [run.id.into(), run.account_key().into(), resource.object.into()];
    let missing: Vec<String> = BackgroundWorker::transaction(|| {
        let sql = format!(
            "SELECT t.id FROM stripe_sync.{} t
              WHERE NOT t._deleted AND t._account_id = $2
                AND coalesce(t._last_event_at, '-infinity') < ({RUN_START})",
            spec.table
        );
        Spi::connect(|c| {
            c.select(&sql, None, &args)
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
        // Listed: the objects committed by this run and by the interrupted
        // calls it resumed (each page counts itself in its call's row).
        let sql = format!(
            "UPDATE stripe_sync.sync_runs r
                SET deleted = $4,
                    listed = (SELECT sum(x.objects) FROM stripe_sync.sync_runs x
                               WHERE x.kind = 'backfill' AND x.object = $3
                                 AND x.account IS NOT DISTINCT FROM nullif($2, '')
                                 AND x.started_at >= ({RUN_START}) AND x.id <= $1),
                    rows_held = (SELECT count(*) FROM stripe_sync.{} t
                                  WHERE NOT t._deleted AND t._account_id = $2)
              WHERE r.id = $1",
            spec.table
        );
        let args: [DatumWithOid; 4] = [
            run.id.into(),
            run.account_key().into(),
            resource.object.into(),
            (gone.len() as i64).into(),
        ];
        Spi::run_with_args(&sql, &args).expect("record reconciliation");
    });
    Ok(())
}

/// The start of the run in progress for account `$2` (`''` for the platform)
/// and object `$3`, `$1` being the current call's run: the call's own start
/// when the cursor has none (a run begun before 0.4.0).
const RUN_START: &str = "SELECT coalesce(c.run_started_at, r.started_at)
                           FROM stripe_sync.sync_runs r
                           LEFT JOIN stripe_sync.sync_cursors c ON c.account = $2 AND c.object = $3
                          WHERE r.id = $1";
