//! Provisioning, the Postgres -> Stripe direction: the worker's side of the
//! outbox (`stripe_sync.provisioning_jobs`) and `create_customer()`. A job is
//! leased in a short transaction, Stripe is called with no transaction open,
//! and the outcome is written in another: the customer id back to the users
//! row, the customer into stripe_sync.customers. Before creating, the user's
//! existing customer is looked for (here, then in Stripe by email and
//! metadata), and the POST carries an Idempotency-Key derived from table and
//! user, so a crash between Stripe's answer and our commit creates nothing twice.

use crate::{apply, outbox, stripe, subxact, users};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use serde_json::{Value, json};
use std::panic::AssertUnwindSafe;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::retry::Failure;

/// Claims and leases due jobs (for 10 minutes: how long a claimed job stays
/// invisible to other claimers).
const CLAIM: &str = include_str!("../sql/queries/provisioning_claim.sql");
const FAILED: &str = include_str!("../sql/queries/provisioning_failed.sql");
const DONE: &str = include_str!("../sql/queries/provisioning_done.sql");

/// One job with what the users row says now.
struct Job {
    id: i64,
    /// The users table, as users::Target names it.
    users: String,
    relid: pg_sys::Oid,
    user_id: String,
    kind: String,
    attempts: i32,
    found: bool,
    /// Why the users row could not be read, when it could not.
    read_error: Option<String>,
    email: Option<String>,
    name: Option<String>,
    customer_id: Option<String>,
}

/// Runs up to `limit` due jobs; returns how many were handled.
pub fn run_due(limit: i64) -> usize {
    let jobs = BackgroundWorker::transaction(|| claim(limit));
    for job in &jobs {
        check_for_interrupts!();
        let outcome = perform(job);
        BackgroundWorker::transaction(|| record(job, outcome));
    }
    jobs.len()
}

fn claim(limit: i64) -> Vec<Job> {
    Spi::connect_mut(|c| {
        let ids: Vec<i64> = c
            .update(CLAIM, None, &[limit.into()])
            .expect("claim provisioning jobs")
            .filter_map(|r| r.get::<i64>(1).ok().flatten())
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let mut targets = std::collections::HashMap::new();
        c.select(
            "SELECT j.id, j.users::oid, j.user_id, j.kind, j.attempts
               FROM stripe_sync.provisioning_jobs j WHERE j.id = ANY($1) ORDER BY j.id",
            None,
            &[ids.into()],
        )
        .expect("read the claimed jobs")
        .map(|r| {
            let relid = r.get::<pg_sys::Oid>(2).ok().flatten().unwrap_or(pg_sys::InvalidOid);
            let user_id: String = r.get(3).ok().flatten().unwrap_or_default();
            // A job of a table no longer provisioned (or dropped) reads no profile and fails alone.
            let target = targets.entry(relid).or_insert_with(|| users::target(relid));
            // A row the owner's code cannot read (a cast that raises, a lock
            // held too long) fails its own job, not the claim of all of them.
            let (users, profile, read_error) = match target {
                Some(t) => match subxact::run(AssertUnwindSafe(|| t.profile(&user_id))) {
                    Ok(p) => (t.name.clone(), p, None),
                    Err(f) => (
                        t.name.clone(),
                        users::Profile::default(),
                        Some(format!("{} (SQLSTATE {})", f.message, f.sqlstate)),
                    ),
                },
                None => {
                    (format!("table with oid {}", relid.to_u32()), users::Profile::default(), None)
                }
            };
            Job {
                id: r.get(1).ok().flatten().unwrap_or_default(),
                users,
                relid,
                user_id,
                kind: r.get(4).ok().flatten().unwrap_or_default(),
                attempts: r.get(5).ok().flatten().unwrap_or(1),
                found: profile.present,
                read_error,
                email: profile.email,
                name: profile.name,
                customer_id: profile.customer_id,
            }
        })
        .collect()
    })
}

/// The Stripe side of a job: the customer it ends with.
fn perform(job: &Job) -> Result<Value, ApiError> {
    if let Some(e) = &job.read_error {
        return Err(ApiError::Local(format!("reading the row from {} failed: {e}", job.users)));
    }
    if !job.found {
        return Err(no_user(&job.users, &job.user_id));
    }
    match (job.kind.as_str(), &job.customer_id) {
        ("create", Some(id)) => Ok(json!({"id": id, "object": "customer", "already": true})),
        ("create", None) => {
            find_or_create(&job.users, &job.user_id, job.email.as_deref(), job.name.as_deref())
        }
        (_, Some(id)) => {
            let params = json!({"email": job.email, "name": job.name});
            let key = format!("stripe_sync-update-{}-{}-{}", job.users, job.user_id, job.id);
            stripe::request(
                stripe::Method::Post(&params, &key),
                &format!("/v1/customers/{id}"),
                &[],
                None,
            )
        }
        (_, None) => Err(ApiError::Local("the user has no customer to update yet".into())),
    }
}

/// The user's customer: found here, found in Stripe, or created there.
fn find_or_create(
    users: &str,
    user_id: &str,
    email: Option<&str>,
    name: Option<&str>,
) -> Result<Value, ApiError> {
    if let Some(found) = find_in_stripe(users, user_id, email)? {
        return Ok(found);
    }
    let params = json!({
        "email": email,
        "name": name,
        "metadata": {"user_id": user_id, "users_table": users},
    });
    let key = format!("stripe_sync-provision-{users}-{user_id}");
    stripe::request(stripe::Method::Post(&params, &key), "/v1/customers", &[], None)
}

/// Looks for a customer whose metadata names this user, among those with
/// the user's email (Stripe lists by email; search is not everywhere).
fn find_in_stripe(
    users: &str,
    user_id: &str,
    email: Option<&str>,
) -> Result<Option<Value>, ApiError> {
    let Some(email) = email else { return Ok(None) };
    let query =
        vec![("email".to_owned(), email.to_owned()), ("limit".to_owned(), "100".to_owned())];
    let list = stripe::request(stripe::Method::Get, "/v1/customers", &query, None)?;
    let mine = |c: &&Value| {
        c.get("metadata").and_then(|m| m.get("user_id")).and_then(Value::as_str) == Some(user_id)
            && c.get("metadata").and_then(|m| m.get("users_table")).and_then(Value::as_str)
                == Some(users)
            && c.get("deleted").and_then(Value::as_bool) != Some(true)
    };
    Ok(list.get("data").and_then(Value::as_array).and_then(|d| d.iter().find(mine)).cloned())
}

/// Writes a job's outcome.
fn record(job: &Job, outcome: Result<Value, ApiError>) {
    // The write-back runs the users table's own triggers (as its owner): one
    // that raises fails this job, retried with backoff, and no other.
    let outcome = outcome.and_then(|customer| {
        if customer.get("already").is_some() {
            return Ok(customer);
        }
        let settled = subxact::run(AssertUnwindSafe(|| settle(job.relid, &job.user_id, &customer)));
        settled.map(|()| customer).map_err(|f| {
            ApiError::Local(format!(
                "writing the customer id back to {} failed: {} (SQLSTATE {})",
                job.users, f.message, f.sqlstate
            ))
        })
    });
    match outcome {
        Ok(customer) => {
            let id = customer.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
            let args: [DatumWithOid; 2] = [job.id.into(), id.as_str().into()];
            Spi::run_with_args(DONE, &args).expect("mark job done");
        }
        Err(e) => {
            // Only what Stripe may accept later is retried; a refused request fails at once.
            let failure = if e.retryable() { Failure::Retryable } else { Failure::Permanent };
            let next = outbox::next(job.attempts, failure);
            let args: [DatumWithOid; 4] = [
                job.id.into(),
                e.describe().as_str().into(),
                next.status().into(),
                next.delay_ms().into(),
            ];
            Spi::run_with_args(FAILED, &args).expect("mark job failed");
        }
    }
}

/// The customer exists in Stripe: write its id back and mirror it.
fn settle(relid: pg_sys::Oid, user_id: &str, customer: &Value) {
    let id = customer.get("id").and_then(Value::as_str).unwrap_or_default();
    if let Some(target) = users::target(relid) {
        target.write_back(user_id, id);
    }
    apply::apply_objects(std::slice::from_ref(customer), stripe::now(), None);
}

/// A read-write transaction on a primary, checked before the customer is
/// created in Stripe, so that a call that could not record it creates none.
fn require_writable() {
    if unsafe { pg_sys::XactReadOnly || pg_sys::RecoveryInProgress() } {
        crate::errors::raise_with_code(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "stripe_sync: create_customer needs a read-write transaction (it writes the customer id back)"
                .to_owned(),
        );
    }
}

/// The caller's privileges for what create_customer reads and writes, checked
/// before anything is read: the users table is read and written as its owner
/// (users.rs), so the caller must hold the rights it exercises through it.
fn require_privileges(relid: pg_sys::Oid, users: &str) {
    // Each privilege apart (a list in has_table_privilege means any of them);
    // the sequence takes USAGE or UPDATE, as nextval does.
    let allowed = Spi::get_one_with_args::<bool>(
        "SELECT NOT row_security_active(t.users)
            AND has_column_privilege(t.users, t.id_column, 'SELECT')
            AND has_column_privilege(t.users, t.email_column, 'SELECT')
            AND (t.name_column IS NULL OR has_column_privilege(t.users, t.name_column, 'SELECT'))
            AND has_column_privilege(t.users, t.customer_id_column, 'SELECT')
            AND has_column_privilege(t.users, t.customer_id_column, 'UPDATE')
            AND has_table_privilege('stripe_sync.customers', 'SELECT')
            AND has_table_privilege('stripe_sync.customers', 'INSERT')
            AND has_table_privilege('stripe_sync.customers', 'UPDATE')
            AND has_table_privilege('stripe_sync.provisioning_jobs', 'SELECT')
            AND has_table_privilege('stripe_sync.provisioning_jobs', 'INSERT')
            AND has_table_privilege('stripe_sync.provisioning_jobs', 'UPDATE')
            AND has_sequence_privilege(pg_get_serial_sequence('stripe_sync.provisioning_jobs', 'id'), 'USAGE, UPDATE')
           FROM stripe_sync.provisioning_targets t WHERE t.users = $1::oid::regclass",
        &[relid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !allowed {
        crate::errors::raise_with_code(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "stripe_sync: create_customer needs SELECT on the id, email and name columns of {users} (with no row security policy applying to the caller), SELECT and UPDATE on its customer id column, SELECT, INSERT and UPDATE on stripe_sync.customers and stripe_sync.provisioning_jobs, and USAGE on the latter's id sequence"
            ),
        );
    }
}

/// `create_customer(user_id, users)`: the same, synchronously, in the session.
pub fn create_customer(user_id: &str, users: Option<pg_sys::Oid>) -> Result<String, ApiError> {
    let relid = match users {
        Some(u) => u,
        None => only_target()?,
    };
    let Some(target) = users::target(relid) else {
        let name = Spi::get_one_with_args::<String>("SELECT $1::regclass::text", &[relid.into()])
            .ok()
            .flatten()
            .unwrap_or_default();
        crate::errors::raise_with_hint(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("provisioning is not enabled for table {name}"),
            "Call stripe_sync.enable_provisioning() for it first.".into(),
        )
    };
    require_privileges(relid, &target.name);
    let profile = target.profile(user_id);
    if !profile.present {
        return Err(no_user(&target.name, user_id));
    }
    if let Some(id) = profile.customer_id {
        return Ok(id); // already provisioned: create nothing
    }
    let (email, name) = (profile.email, profile.name);
    let users = target.name.clone();
    require_writable();
    let customer = find_or_create(&users, user_id, email.as_deref(), name.as_deref())?;
    settle(relid, user_id, &customer);
    let id = customer.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let args: [DatumWithOid; 3] = [relid.into(), user_id.into(), id.as_str().into()];
    Spi::run_with_args(
        "INSERT INTO stripe_sync.provisioning_jobs (users, user_id, kind, status, attempts, customer_id, done_at)
         VALUES ($1::oid::regclass, $2, 'create', 'done', 1, $3, now())
         ON CONFLICT (users, user_id) WHERE kind = 'create'
         DO UPDATE SET status = 'done', customer_id = $3, done_at = now(), last_error = NULL",
        &args,
    )
    .expect("record the job");
    Ok(id)
}

/// `provision_existing_users()`: a create job for every user of every target
/// that has no customer id yet; returns how many were queued.
pub fn queue_existing_users() -> i64 {
    let mut total = 0;
    for target in users::targets() {
        let ids = target.unprovisioned();
        let args: [DatumWithOid; 2] = [target.relid.into(), ids.into()];
        total += Spi::get_one_with_args::<i64>(
            "WITH queued AS (
                 INSERT INTO stripe_sync.provisioning_jobs (users, user_id, kind)
                 SELECT $1::oid::regclass, u, 'create' FROM pg_catalog.unnest($2::text[]) AS u
                 ON CONFLICT (users, user_id) WHERE kind = 'create' DO NOTHING
                 RETURNING 1)
             SELECT pg_catalog.count(*) FROM queued",
            &args,
        )
        .expect("queue provisioning jobs")
        .unwrap_or(0);
    }
    if total > 0 {
        crate::shmem::wake_worker_after_commit();
    }
    total
}

fn no_user(users: &str, user_id: &str) -> ApiError {
    ApiError::NoUser(format!("no row with id \"{user_id}\" in {users}"))
}

/// The one provisioning target, when `users` was not named.
fn only_target() -> Result<pg_sys::Oid, ApiError> {
    let targets = users::targets();
    match targets.as_slice() {
        [one] => Ok(one.relid),
        [] => Err(ApiError::NotConfigured(
            "provisioning is not enabled for any table (call stripe_sync.enable_provisioning first)"
                .into(),
        )),
        many => Err(ApiError::InvalidArgument(format!(
            "several users tables are provisioned ({}): name one as the second argument",
            many.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}
