//! Event handlers: the worker's side of `stripe_sync.handler_runs`. Runs are
//! created with the apply (sql/queries/mark_done.sql); here, in a later
//! transaction, each due run calls its handler in its own subtransaction, as
//! the registration's `run_as` role inside a security-restricted operation
//! (security::Restricted: no SET ROLE, no temporary objects, search_path
//! `pg_catalog, pg_temp`, every setting it changes undone after the call), so
//! an error rolls back only that call and nothing it does outlives it.
//! A call that returns is marked succeeded at once, in the transaction that
//! claimed the run, so a handler's effects and its success commit together
//! (at most once). Not in the call's subtransaction: a row locked by a
//! transaction and updated by its subtransaction gets a MultiXact as its
//! xmax, and the claim's scans could then never tell that the old version is
//! dead (src/drain.rs has the same rule for events).

use crate::{outbox, subxact};
use pgrx::prelude::*;
use stripe_sync_core::retry::Failure;

const CLAIM: &str = include_str!("../sql/queries/handler_claim.sql");

const SUCCEEDED: &str = include_str!("../sql/queries/handler_succeeded.sql");

const FAILED: &str = include_str!("../sql/queries/handler_failed.sql");

/// One due call.
struct Run {
    event_id: String,
    handler_id: i64,
    attempt: i32,
    run_as: pg_sys::Oid,
    role_exists: bool,
    /// The function's owner, when it may not act as `run_as`: whoever owns a
    /// function can change its body, so a handler never runs with more
    /// rights than its owner has (a superuser's handler owned by an
    /// application role would otherwise run the role's code as superuser).
    weaker_owner: Option<String>,
    /// `SELECT schema.function($1::jsonb)`; None when the function is gone.
    call: Option<String>,
    handler: String,
    event: String,
}

/// Calls up to `limit` due handler runs in the current transaction; returns
/// how many were called.
pub fn run_due(limit: i64) -> usize {
    let runs = claim(limit);
    for run in &runs {
        check_for_interrupts!();
        match subxact::run(|| call(run)) {
            Ok(()) => Spi::run_with_args(
                SUCCEEDED,
                &[run.event_id.as_str().into(), run.handler_id.into()],
            )
            .expect("mark the handler run succeeded"),
            Err(f) => record_failure(run, &format!("{} (SQLSTATE {})", f.message, f.sqlstate)),
        }
    }
    runs.len()
}

fn claim(limit: i64) -> Vec<Run> {
    Spi::connect_mut(|client| {
        client
            .update(CLAIM, None, &[limit.into()])
            .expect("claim handler runs")
            .map(|row| Run {
                event_id: row.get::<String>(1).ok().flatten().unwrap_or_default(),
                handler_id: row.get::<i64>(2).ok().flatten().unwrap_or_default(),
                attempt: row.get::<i32>(3).ok().flatten().unwrap_or(1),
                run_as: row.get::<pg_sys::Oid>(4).ok().flatten().unwrap_or(pg_sys::InvalidOid),
                role_exists: row.get::<bool>(5).ok().flatten().unwrap_or(false),
                weaker_owner: row.get::<String>(6).ok().flatten(),
                call: row.get::<String>(7).ok().flatten(),
                handler: row.get::<String>(8).ok().flatten().unwrap_or_default(),
                event: row.get::<String>(9).ok().flatten().unwrap_or_default(),
            })
            .collect()
    })
}

/// One call, inside its subtransaction: an ERROR unwinds out of here.
fn call(run: &Run) {
    let Some(sql) = &run.call else {
        crate::errors::raise_with_hint(
            PgSqlErrorCode::ERRCODE_UNDEFINED_FUNCTION,
            format!("handler {} no longer exists", run.handler),
            "Remove it with stripe_sync.remove_handler().".into(),
        )
    };
    if !run.role_exists {
        crate::errors::raise_with_code(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "the role handler {} runs as (oid {}) no longer exists",
                run.handler, run.run_as
            ),
        )
    }
    if let Some(owner) = &run.weaker_owner {
        crate::errors::raise_with_hint(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "handler {} is owned by {owner}, who is not a member of the role it runs as (oid {})",
                run.handler,
                run.run_as.to_u32()
            ),
            format!(
                "Its owner could change what it does: register it with run_as => '{owner}' (or a role {owner} is a member of), or make a role you trust its owner."
            ),
        )
    }
    let _role = crate::security::Restricted::enter(run.run_as);
    Spi::run_with_args(sql, &[run.event.as_str().into()]).expect("call the handler");
}

fn record_failure(run: &Run, error: &str) {
    let next = outbox::next(run.attempt, Failure::Retryable);
    Spi::run_with_args(
        FAILED,
        &[
            run.event_id.as_str().into(),
            run.handler_id.into(),
            error.into(),
            next.status().into(),
            next.delay_ms().into(),
        ],
    )
    .expect("record a failed handler run");
    // The error may quote data: it goes to the table, not to the log.
    warning!(
        "stripe_sync: handler {} raised for event {} (attempt {} of {}); {} it: see stripe_sync.handler_failures",
        run.handler,
        run.event_id,
        run.attempt,
        crate::config::max_attempts(),
        outbox::what_next(&next)
    );
}
