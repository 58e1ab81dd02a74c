//! A backfill at the pace the request budget allows: several pages in flight
//! at once, each from its own chain (a slice of created time in
//! `stripe_sync.sync_slices`, listed newest first), cut as the answers show
//! where the objects are (stripe_sync_core::chains). The requests go from
//! threads (crate::inflight); this backend applies each answer and commits
//! it with its slice's cursor, so an interrupted run resumes slice by slice
//! as before. How many requests are in flight follows the budget and the
//! answers' latency: no setting to tune.

use super::commit_page;
use crate::inflight::{Pool, Sleep};
use crate::runs::Run;
use crate::stripe::{self, Client, Method};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stripe_sync_core::chains::{self, Chain, Next, PageSeen, Plan};
use stripe_sync_core::http::ApiError;
use stripe_sync_core::objects::Resource;
use stripe_sync_core::pagination::{self, PAGE_SIZE};
use stripe_sync_core::slices::{Slice, slice_query};

/// What a request thread is asked for: a page of chain `chain`, over `slice`
/// as it was when asked; or when the account was created (where its
/// objects begin: `Plan::floor`).
enum Job {
    Page { chain: usize, slice: Slice, query: Vec<(String, String)> },
    Floor,
}

enum Answer {
    Page(Fetched),
    /// The account's `created`, when the server says.
    Floor(Option<i64>),
}

struct Fetched {
    chain: usize,
    slice: Slice,
    fetched: Result<(pagination::RawPage, Option<pagination::Page>), ApiError>,
    /// Unix µs when the request went.
    sent_at: i64,
    /// How long the request waited for the budget (and between attempts).
    waited: Duration,
}

/// Latency assumed before the first answer.
const FIRST_LATENCY: f64 = 0.5;

/// What a paced run did.
pub(super) enum Outcome {
    /// Every slice listed: the objects applied by this process.
    Done(i64),
    /// The server ignores the created filter (an object outside its slice
    /// came back) or refuses it (400): the slices are dropped, the run pages
    /// on without them.
    FilterIgnored,
}

/// Pages every slice of the run left to page (claimed by this process) with
/// requests in flight, until all are done. Fails with the first error a
/// request met (the slices keep their cursors: the next call resumes).
pub(super) fn run(
    run: &Run,
    resource: &Resource,
    first: Option<&pagination::RawPage>,
) -> Result<Outcome, ApiError> {
    let client = Client::new()?;
    let rate = client.rate();
    let chains = BackgroundWorker::transaction(|| claim_all(run, resource.object));
    let mut plan = Plan::new(chains);
    // A new run's one slice starts where its first page ended: what that page
    // showed is the slice's, so the first cuts need not wait for another answer.
    if let (Some(page), 1) = (first, plan.chains.len()) {
        plan.page_done(0, seen(page));
    }
    let account = run.account.clone();
    let path = resource.path;
    let pool =
        Pool::new(chains::in_flight_for(rate, 2.0), &client, move |client, sleep, job| match job {
            Job::Page { chain, slice, query } => {
                Answer::Page(fetch(client, sleep, path, account.as_deref(), chain, slice, query))
            }
            Job::Floor => Answer::Floor(account_created(client, sleep, account.as_deref())),
        });
    pool.submit(Job::Floor);
    // A chain's round trip: from its request's submission to the commit of its
    // answer (the answer's own latency, the budget's wait, this backend's apply).
    let mut latency = FIRST_LATENCY;
    let mut asked: Vec<Option<Instant>> = Vec::new();
    let mut total = 0i64;
    let mut slice_pages = 0usize;
    loop {
        let target = chains::in_flight_for(rate, latency);
        while plan.in_flight() < target {
            match plan.next(target) {
                Next::Page(i) => {
                    let c = &mut plan.chains[i];
                    c.in_flight = true;
                    let query = slice_query(resource.list_params, c.after.as_deref(), c.slice());
                    pool.submit(Job::Page { chain: i, slice: c.slice(), query });
                    asked.resize(plan.chains.len(), None);
                    asked[i] = Some(Instant::now());
                }
                Next::Cut { from, new } => {
                    let (kept, cut) = (plan.chains[from].slice(), plan.chains[new].slice());
                    BackgroundWorker::transaction(|| store_cut(run, resource.object, kept, cut));
                }
                Next::Wait => break,
            }
        }
        if plan.in_flight() == 0 {
            BackgroundWorker::transaction(|| crate::runs::record_left(run.id, 0));
            return Ok(Outcome::Done(total));
        }
        let answer = match pool.next() {
            Answer::Page(answer) => answer,
            Answer::Floor(created) => {
                plan.floor = created.unwrap_or(i64::MIN);
                continue;
            }
        };
        let (page, completed) = match answer.fetched {
            // A bad request for the first slice page is one with a created filter this
            // server does not take (localstripe's lists): paged on without slices. Later,
            // when slice pages were answered, it is an error like any other.
            Err(ApiError::Refused { status: 400, message, .. }) if slice_pages == 0 => {
                warning!(
                    "stripe_sync: {} refuses a created filter here ({message}); one request at a time pages it",
                    resource.path
                );
                BackgroundWorker::transaction(|| drop_slices(run, resource.object));
                return Ok(Outcome::FilterIgnored);
            }
            other => other?,
        };
        let outside = page
            .items
            .iter()
            .filter_map(|i| i.created)
            .any(|t| t < answer.slice.gte || t >= answer.slice.lt);
        if outside {
            warning!(
                "stripe_sync: {} cannot be listed by created time here (the API ignores created[lt]); one request at a time pages it",
                resource.path
            );
            BackgroundWorker::transaction(|| drop_slices(run, resource.object));
            return Ok(Outcome::FilterIgnored);
        }
        let high = page.max_created();
        slice_pages += 1;
        plan.page_done(answer.chain, seen(&page));
        let c: &Chain = &plan.chains[answer.chain];
        let (slice, last, done) = (c.slice(), c.after.clone(), c.done);
        let fetched_at = timestamp(answer.sent_at);
        let f = super::Fetched { page, completed, fetched_at };
        let left = plan.objects_left();
        let (n, failed) = commit_page(run, &f, || {
            super::slices::save_slice(run, resource.object, slice, last.as_deref(), done, high);
            crate::runs::record_left(run.id, left);
        });
        total += n;
        if let Some(at) = asked.get(answer.chain).copied().flatten() {
            // The budget's wait is left out: it is the budget, not a reason for more chains.
            let trip = at.elapsed().saturating_sub(answer.waited).as_secs_f64();
            latency = 0.8 * latency + 0.2 * trip;
        }
        if failed {
            // Recorded by another process of the run: it is raised as the run's failure.
            return Err(ApiError::Local("a worker of this backfill failed".into()));
        }
    }
}

fn seen(page: &pagination::RawPage) -> PageSeen {
    PageSeen {
        last_id: page.last_id().map(str::to_owned),
        oldest: page.min_created(),
        newest: page.max_created(),
        full: page.items.len() >= PAGE_SIZE as usize,
        has_more: page.has_more,
    }
}

/// A request thread's work: the page, with any child list that stopped
/// short completed. No PostgreSQL here.
fn fetch(
    client: &Client,
    sleep: &Sleep,
    path: &str,
    account: Option<&str>,
    chain: usize,
    slice: Slice,
    query: Vec<(String, String)>,
) -> Fetched {
    let waited = Cell::new(Duration::ZERO);
    let pause = |d: Duration| {
        waited.set(waited.get() + d);
        sleep.sleep(d);
    };
    let sent_at = unix_micros();
    let fetched = client
        .send(Method::Get, path, &query, account, pagination::scan_page, pause)
        .and_then(|page| {
            if !page.has_partial_children() {
                return Ok((page, None));
            }
            let mut tree = pagination::parse_page(&page.body).map_err(ApiError::malformed)?;
            let get = |p: &str, q: &[(String, String)]| {
                client.send(Method::Get, p, q, account, json, pause)
            };
            crate::listing::complete_children_with(&get, &mut tree.data)?;
            Ok((page, Some(tree)))
        });
    Fetched { chain, slice, fetched, sent_at, waited: waited.get() }
}

/// When the account was created (`GET /v1/account`): none of its objects
/// is older. None when the server does not say (a stand-in, a restricted key).
fn account_created(client: &Client, sleep: &Sleep, account: Option<&str>) -> Option<i64> {
    let got = client.send(Method::Get, "/v1/account", &[], account, json, |d| sleep.sleep(d));
    got.ok()?.get("created")?.as_i64()
}

fn json(body: String) -> Result<serde_json::Value, String> {
    serde_json::from_str(&body).map_err(|e| e.to_string())
}

fn unix_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Unix µs as a timestamptz (PostgreSQL counts from 2000-01-01).
fn timestamp(unix_us: i64) -> TimestampWithTimeZone {
    const PG_EPOCH_US: i64 = 946_684_800_000_000;
    TimestampWithTimeZone::try_from(unix_us - PG_EPOCH_US).unwrap_or_else(|_| stripe::now())
}

/// Claims every slice of the run not done for this process (a process of an
/// interrupted run holds none any more); its chains.
fn claim_all(run: &Run, object: &str) -> Vec<Chain> {
    let args: [DatumWithOid; 3] =
        [run.account_key().into(), object.into(), unsafe { pg_sys::MyProcPid }.into()];
    Spi::connect_mut(|c| {
        c.update(
            "UPDATE stripe_sync.sync_slices SET claimed_by = $3
              WHERE account = $1 AND object = $2 AND NOT done
             RETURNING created_gte, created_lt, starting_after",
            None,
            &args,
        )
        .expect("claim the slices")
        .filter_map(|r| {
            let slice = Slice { gte: r.get::<i64>(1).ok()??, lt: r.get::<i64>(2).ok()?? };
            Some(Chain::new(slice, r.get::<String>(3).ok().flatten()))
        })
        .collect()
    })
}

/// Stores a cut: the chain that was `[cut.gte, kept.lt)` keeps `kept` (its
/// cursor with it) and `cut` is a new slice, claimed by this process.
fn store_cut(run: &Run, object: &str, kept: Slice, cut: Slice) {
    let (account, pid) = (run.account_key(), unsafe { pg_sys::MyProcPid });
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_slices SET created_gte = $4
          WHERE account = $1 AND object = $2 AND created_gte = $3",
        &[account.into(), object.into(), cut.gte.into(), kept.gte.into()],
    )
    .expect("move a cut slice");
    Spi::run_with_args(
        "INSERT INTO stripe_sync.sync_slices (account, object, created_gte, created_lt, claimed_by)
         VALUES ($1, $2, $3, $4, $5)",
        &[account.into(), object.into(), cut.gte.into(), cut.lt.into(), pid.into()],
    )
    .expect("store a cut slice");
}

fn drop_slices(run: &Run, object: &str) {
    Spi::run_with_args(
        "DELETE FROM stripe_sync.sync_slices WHERE account = $1 AND object = $2",
        &[run.account_key().into(), object.into()],
    )
    .expect("drop the slices");
}
