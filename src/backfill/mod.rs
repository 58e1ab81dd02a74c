//! Backfill pages through a list endpoint (or, for payment methods, tax ids,
//! active entitlements and product features, through each parent's), applying each page with the same
//! statements as events and committing it together with its cursor, so an
//! interrupted run resumes at the next page. It runs inside a job worker
//! (jobs.rs): HTTP happens between transactions, never inside one.
//!
//! Here: the page loop. `cursors`: where a run starts and how far it got;
//! `slices`: a run cut by created time; `paced`: its slices paged with
//! several requests in flight, at the pace of the request budget;
//! `reconcile`: rows a full listing no longer returned.

mod cursors;
mod paced;
mod reconcile;
mod slices;

pub use slices::work_slices;

use crate::listing::{PARENTS_PER_COMMIT, complete_children, list_of_parent, parents_after};
use crate::runs::{Run, record_page};
use crate::{apply, stripe};
use cursors::{Start, begin_cursor, finish_cursor, save_cursor};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::objects::{self, Listing, Resource};
use stripe_sync_core::pagination::{self, Page, RawPage};

/// A page as fetched: its text taken apart, and its tree when a child list
/// had to be completed first.
pub(super) struct Fetched {
    page: RawPage,
    completed: Option<Page>,
    fetched_at: TimestampWithTimeZone,
}

/// Fetches one list page (HTTP only, no transaction) and completes any child
/// list that stopped short in the page's tree; otherwise the text goes to the
/// database as it came.
pub(super) fn fetch(
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
        let mut tree = pagination::parse_page(&page.body).map_err(ApiError::malformed)?;
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
pub(super) fn commit_page(
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
    let by_created = resource.created_filter;
    let start = BackgroundWorker::transaction(|| {
        begin_cursor(run, resource.object, created_after, by_created)
    });
    if resource.per_parent() {
        let total = backfill_per_parent(run, resource, &start)?;
        if start.full {
            reconcile::reconcile(run, resource)?;
        }
        BackgroundWorker::transaction(|| finish_cursor(run, resource.object));
        return Ok(total);
    }
    let workers = crate::config::backfill_workers();
    let mut sliced =
        start.resumed && BackgroundWorker::transaction(|| slices::has_slices(run, resource.object));
    let mut after = start.starting_after.clone();
    let mut total = 0i64;
    let mut paced = true;
    let mut first: Option<RawPage> = None;
    loop {
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
            // After the first page of a new run: what is left is paged by time
            // slices, several pages in flight (or several job workers).
            if by_created && paced && !start.resumed && after.is_none() {
                sliced = if workers > 1 {
                    slices::plan_slices(run, resource, &start, &f.page, workers)?
                } else {
                    slices::one_slice(run, resource, &start, &f.page)
                };
                first = Some(f.page);
            }
            after = last;
        }
        if !sliced {
            break;
        }
        if workers > 1 {
            total += slices::run_slices(run, resource, workers)?;
            break;
        }
        match paced::run(run, resource, first.as_ref())? {
            paced::Outcome::Done(n) => {
                total += n;
                break;
            }
            // Paged on from the first page, one page at a time.
            paced::Outcome::FilterIgnored => {
                let cursor = first.as_ref().and_then(|p| p.last_id()).map(str::to_owned);
                (sliced, paced, after) = (false, false, cursor);
            }
        }
    }
    if start.full {
        reconcile::reconcile(run, resource)?;
    }
    BackgroundWorker::transaction(|| finish_cursor(run, resource.object));
    Ok(total)
}

/// A per-parent listing (payment methods and tax ids per customer, active
/// entitlements per customer, features per product): every live parent of
/// the account in the mirror (those created since the last completed run, for
/// an incremental one), in id order, each listed in full; committed every
/// [`PARENTS_PER_COMMIT`] parents with the last one's id as the cursor, so an
/// interrupted run resumes after it. A parent Stripe no longer has has
/// nothing to list: its own deletion reaches the mirror by event or by its
/// type's reconciliation.
fn backfill_per_parent(run: &Run, resource: &Resource, start: &Start) -> Result<i64, ApiError> {
    let Listing::PerParent { parent_table, .. } = resource.listing else { return Ok(0) };
    let account = run.account.as_deref();
    let mut after = start.starting_after.clone();
    let mut total = 0i64;
    loop {
        let parents = BackgroundWorker::transaction(|| {
            parents_after(parent_table, run.account_key(), after.as_deref(), start.created_gte)
        });
        let Some((last, _)) = parents.last().cloned() else { break };
        let fetched_at = stripe::now();
        let mut listed = Vec::new();
        for (parent, _) in &parents {
            if let Some(objects) = list_of_parent(resource, parent, account)? {
                listed.push((parent.clone(), objects));
            }
        }
        let high = parents.iter().filter_map(|(_, created)| *created).max();
        let n = listed.iter().map(|(_, objects)| objects.len() as i64).sum();
        BackgroundWorker::transaction(|| {
            Spi::run("SET LOCAL synchronous_commit = off").expect("set synchronous_commit");
            apply::apply_listed(resource, listed, fetched_at, account);
            save_cursor(run, resource.object, Some(&last), high);
            record_page(run.id, n);
        });
        total += n;
        if (parents.len() as i64) < PARENTS_PER_COMMIT {
            break;
        }
        after = Some(last);
    }
    Ok(total)
}
