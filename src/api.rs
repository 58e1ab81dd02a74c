//! The SQL functions of schema stripe_sync, kept thin: check arguments, call
//! the module that does the work, map errors to SQLSTATEs.

use crate::{config, drain, errors, ingest, queue, shmem};
use pgrx::prelude::*;
use stripe_sync_core::sqlstate;

/// `stripe_sync.ingest_event(payload, signature)`: see sql/finalize.sql.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn ingest_event(payload: Option<&str>, signature: Option<&str>) -> &'static str {
    match ingest::ingest(payload, signature) {
        Ok(outcome) => outcome.as_str(),
        Err(e) => errors::raise(e),
    }
}

/// `stripe_sync.process_pending(max_events)`: see sql/finalize.sql.
#[pg_extern(volatile, parallel_unsafe)]
fn process_pending(max_events: default!(Option<i32>, "NULL")) -> i32 {
    let max = match max_events {
        None => None,
        Some(n) if n >= 0 => Some(n as usize),
        Some(n) => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("max_events must be zero or more, or NULL, not {n}")
            );
        }
    };
    crate::version::require_current();
    let handled = drain::run_in_session(max) as i32;
    // Without the worker, handlers run here too (in this transaction, each in
    // its own subtransaction); Slack alerts are left to the worker, which
    // posts them with no transaction open.
    crate::handlers::run_due(HANDLER_RUNS_PER_CALL);
    handled
}

/// Handler runs process_pending() calls at most per call.
const HANDLER_RUNS_PER_CALL: i64 = 1000;

/// `stripe_sync.worker_status()`: the worker's pid and last heartbeat, from
/// shared memory (no row while no worker runs). Feeds the `status` view.
#[pg_extern(stable, parallel_safe)]
fn worker_status() -> TableIterator<
    'static,
    (name!(pid, i32), name!(last_heartbeat, Option<pgrx::datum::TimestampWithTimeZone>)),
> {
    let row = crate::shmem::worker_info().map(|(pid, heartbeat_ms)| {
        let at = (heartbeat_ms > 0)
            .then(|| pgrx::datum::TimestampWithTimeZone::try_from(unix_ms_to_pg(heartbeat_ms)).ok())
            .flatten();
        (pid, at)
    });
    TableIterator::new(row)
}

/// Unix milliseconds to PostgreSQL's microseconds since 2000-01-01.
fn unix_ms_to_pg(ms: i64) -> i64 {
    const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;
    ms * 1000 - PG_EPOCH_OFFSET_US
}

/// `stripe_sync.retry_failed()`: every failed event back in the queue with a
/// fresh attempt budget; returns how many.
#[pg_extern(volatile, parallel_unsafe)]
fn retry_failed() -> i64 {
    let n = queue::requeue(None).len();
    if n > 0 {
        shmem::wake_worker_after_commit();
    }
    n as i64
}

/// `stripe_sync.replay_event(id)`: one event applied again, whatever its status.
/// The ordering rule still holds: a replayed old event changes nothing newer.
#[pg_extern(volatile, parallel_unsafe)]
fn replay_event(id: &str) -> &'static str {
    if queue::requeue(Some(id)).is_empty() {
        errors::raise_with_hint(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("no event \"{id}\" in stripe_sync.events"),
            "replay_event() replays events that were ingested; catch_up() fetches missing ones from Stripe.".into(),
        );
    }
    shmem::wake_worker_after_commit();
    "queued"
}

/// `stripe_sync.purge_events(older_than)`: deletes processed and skipped events
/// handled longer ago than `older_than` (default stripe_sync.event_retention).
#[pg_extern(volatile, parallel_unsafe)]
fn purge_events(older_than: default!(Option<pgrx::datum::Interval>, "NULL")) -> i64 {
    let older_than = older_than.unwrap_or_else(config::event_retention);
    // A negative age would purge events handled a moment ago: surely a typo.
    if Spi::get_one_with_args::<bool>("SELECT $1 < interval '0'", &[older_than.into()])
        .ok()
        .flatten()
        .unwrap_or(false)
    {
        crate::errors::raise_with_code(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "stripe_sync: purge_events needs an age of zero or more, e.g. '30 days'".to_owned(),
        );
    }
    queue::purge(older_than)
}

/// `stripe_sync.sync_object(id)`: refetches one object by id and applies it;
/// returns its table.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_object(id: &str) -> &'static str {
    crate::refresh::sync_object(id).unwrap_or_else(|e| crate::errors::raise_api(e))
}

/// `stripe_sync.backfill(object, created_after)`: see sql/finalize.sql.
#[pg_extern(volatile, parallel_unsafe)]
fn backfill(
    object: &str,
    created_after: default!(Option<pgrx::datum::TimestampWithTimeZone>, "NULL"),
    account: default!(Option<&str>, "NULL"),
) -> i64 {
    use crate::jobs::{Kind, run_and_wait};
    let created_after = created_after.map(unix_seconds);
    let names = stripe_sync_core::objects::backfill_names();
    if object == "all" {
        let mut total = 0;
        // Connected accounts are listed by the platform only.
        let names = names
            .into_iter()
            .filter(|n| account.is_none() || *n != stripe_sync_core::objects::ACCOUNT);
        for name in names {
            // Listed parent by parent (a request per customer or product): only where the
            // account has entitlement features in the mirror (listed just before), else there
            // is nothing to find.
            let needs_features =
                [stripe_sync_core::objects::ENTITLEMENT_SUMMARY, "product_feature"];
            if needs_features.contains(&name) && !has_entitlement_features(account) {
                notice!(
                    "stripe_sync: backfill of {name} skipped: the account has no entitlement features in stripe_sync.entitlement_features"
                );
                continue;
            }
            match crate::subxact::run(|| run_and_wait(Kind::Backfill, name, created_after, account))
            {
                Ok(n) => total += n,
                // A server without this endpoint (a stand-in, an older API): say so, go on.
                Err(f) if sqlstate::not_listed_here(&f.sqlstate) => {
                    warning!("stripe_sync: backfill of {name} skipped: {}", f.message)
                }
                // Connected accounts are a Connect platform's: another account's key is
                // refused (403), or asked a bad request; nothing to list there.
                Err(f)
                    if name == stripe_sync_core::objects::ACCOUNT
                        && sqlstate::not_a_platform(&f.sqlstate) =>
                {
                    warning!(
                        "stripe_sync: backfill of {name} skipped (not a Connect platform?): {}",
                        f.message
                    )
                }
                // Raised again with its own SQLSTATE: 'all' fails as the object type would.
                Err(f) => errors::reraise(&f.sqlstate, f.message),
            }
        }
        return total;
    }
    let name = names.iter().find(|n| {
        **n == object
            || stripe_sync_core::mapping::spec_for(n).is_some_and(|s| s.table == object)
            || stripe_sync_core::mapping::listed_for(n).is_some_and(|l| l.child.table == object)
    });
    let Some(name) = name else {
        errors::raise_with_hint(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("unknown object type \"{object}\" for backfill"),
            format!("Use 'all' or one of: {}.", names.join(", ")),
        );
    };
    let resource = stripe_sync_core::objects::resource(name);
    if created_after.is_some() && resource.is_some_and(|r| !r.created_filter) {
        notice!(
            "stripe_sync: Stripe's list of {name} takes no created filter: every {name} is listed"
        );
    }
    run_and_wait(Kind::Backfill, name, created_after, account)
}

/// Whether the mirror holds a live entitlement feature of `account` (None:
/// the platform).
fn has_entitlement_features(account: Option<&str>) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM stripe_sync.entitlement_features
                         WHERE _account_id = coalesce($1, '') AND NOT _deleted)",
        &[account.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// `stripe_sync.catch_up(account)`: see sql/finalize.sql. Without an account,
/// every known one (stripe_sync.accounts) in turn; a failure of one is
/// raised after the others ran.
#[pg_extern(volatile, parallel_unsafe)]
fn catch_up(account: default!(Option<&str>, "NULL")) -> i64 {
    use crate::jobs::{Kind, run_and_wait};
    let accounts = match account {
        Some(a) => vec![a.to_owned()],
        None => crate::accounts::known(),
    };
    let now = chrono::Utc::now().timestamp();
    let retention = crate::catch_up::retention_seconds();
    let mut total = 0;
    let mut failed: Option<crate::subxact::Failure> = None;
    for a in &accounts {
        let (_, gap) = stripe_sync_core::watermark::listing_start(
            crate::catch_up::watermark(a),
            now,
            retention,
        );
        if gap {
            warning!(
                "stripe_sync: the last catch-up of {} is older than Stripe's 30-day event window; events older than 30 days cannot be recovered: run stripe_sync.backfill('all')",
                crate::accounts::describe(a)
            );
        }
        let one = (!a.is_empty()).then_some(a.as_str());
        if account.is_some() {
            return run_and_wait(Kind::CatchUp, "event", None, one);
        }
        match crate::subxact::run(|| run_and_wait(Kind::CatchUp, "event", None, one)) {
            Ok(n) => total += n,
            Err(f) => {
                warning!(
                    "stripe_sync: catch-up of {} failed: {}",
                    crate::accounts::describe(a),
                    f.message
                );
                failed.get_or_insert(f);
            }
        }
    }
    if let Some(f) = failed {
        errors::reraise(&f.sqlstate, f.message);
    }
    total
}

/// `stripe_sync.verify(object, account, repair)`: see
/// sql/stripe_sync--0.6.0--0.7.0.sql. A row per object type compared.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn verify(
    object: Option<&str>,
    account: Option<&str>,
    repair: Option<bool>,
) -> TableIterator<
    'static,
    (
        name!(object, String),
        name!(account, String),
        name!(listed, i64),
        name!(missing, i64),
        name!(extra, i64),
        name!(differs, i64),
        name!(repaired, i64),
    ),
> {
    use crate::jobs::{Kind, run_and_wait_for_run};
    // Dependency order, as backfill('all'): the mirrored types whose listing
    // can be compared object by object.
    let ordered: Vec<&'static str> = stripe_sync_core::objects::RESOURCES
        .iter()
        .filter(|r| r.verifiable() && stripe_sync_core::mapping::spec_for(r.object).is_some())
        .map(|r| r.object)
        .collect();
    let object = object.unwrap_or_default();
    let chosen: Vec<&'static str> = if object == "all" {
        ordered.clone()
    } else {
        match ordered.iter().find(|n| {
            **n == object
                || stripe_sync_core::mapping::spec_for(n).is_some_and(|s| s.table == object)
        }) {
            Some(n) => vec![*n],
            None => errors::raise_with_hint(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("unknown object type \"{object}\" for verify"),
                format!("Use 'all' or one of: {}.", ordered.join(", ")),
            ),
        }
    };
    let account = account.filter(|a| !a.is_empty());
    let kind = Kind::Verify { repair: repair.unwrap_or(false) };
    let mut rows = Vec::new();
    for name in chosen {
        let run = if object == "all" {
            match crate::subxact::run(|| run_and_wait_for_run(kind, name, None, account)) {
                Ok((run, _)) => run,
                // A server without this endpoint (a stand-in, an older API): say so, go on.
                Err(f) if sqlstate::not_listed_here(&f.sqlstate) => {
                    warning!("stripe_sync: verify of {name} skipped: {}", f.message);
                    continue;
                }
                Err(f) => errors::reraise(&f.sqlstate, f.message),
            }
        } else {
            run_and_wait_for_run(kind, name, None, account).0
        };
        let s = crate::verify::summary(run);
        rows.push((
            name.to_owned(),
            account.unwrap_or_default().to_owned(),
            s.listed,
            s.missing,
            s.extra,
            s.differs,
            s.repaired,
        ));
    }
    TableIterator::new(rows)
}

/// `created_after` in Unix seconds; 'infinity' and '-infinity' are refused
/// ('epoch' asks for a full run).
fn unix_seconds(t: pgrx::datum::TimestampWithTimeZone) -> i64 {
    if t.is_infinity() || t.is_neg_infinity() {
        crate::errors::raise_with_hint(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "stripe_sync: created_after must be a finite time".to_owned(),
            "Pass 'epoch' to list everything.".to_owned(),
        );
    }
    let pg_us: i64 = t.into_inner();
    (pg_us + 946_684_800_000_000).div_euclid(1_000_000)
}

/// `stripe_sync.create_customer(user_id, users)`: the user's Stripe customer,
/// created (or found) now, written back to the users row; see sql/finalize.sql.
#[pg_extern(volatile, parallel_unsafe)]
fn create_customer(user_id: &str, users: default!(Option<pgrx::PgRelation>, "NULL")) -> String {
    crate::provision::create_customer(user_id, users.map(|rel| rel.oid()))
        .unwrap_or_else(|e| crate::errors::raise_api(e))
}

/// `stripe_sync.provision_existing_users()`: see sql/stripe_sync--0.5.0--0.6.0.sql.
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn provision_existing_users() -> i64 {
    crate::provision::queue_existing_users()
}

/// `stripe_sync._wake_worker()`: wakes the worker when this transaction commits
/// (the provisioning trigger calls it).
#[pg_extern(volatile, parallel_unsafe)]
fn _wake_worker() {
    shmem::wake_worker_after_commit();
}
