//! `#[pg_test]`s of the SQL surface, one file per part of it. Each runs in a
//! transaction that is rolled back, so the worker never sees their rows: they
//! apply with process_pending(). Here: what the files share.

mod accounts;
mod apply;
mod entitlements;
mod handlers;
mod ingest;
mod jsonb;
mod ledger;
mod provisioning;
mod queue;
mod revenue;
mod security;
mod worker;

use crate::subxact::{self, Failure};
use pgrx::prelude::*;
use std::time::Duration;
use stripe_sync_core::mapping::SPECS;
use stripe_sync_core::signature::sign;

pub const SECRET: &str = "whsec_pgtest";

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn header(payload: &str, secret: &str, t: i64) -> String {
    format!("t={t},v1={}", sign(payload.as_bytes(), secret, t))
}

pub fn ingest(payload: &str, header: &str) -> String {
    Spi::get_one_with_args::<String>(
        "SELECT stripe_sync.ingest_event($1, $2)",
        &[payload.into(), header.into()],
    )
    .unwrap()
    .unwrap()
}

pub fn ingest_signed(payload: &str) -> String {
    ingest(payload, &header(payload, SECRET, now()))
}

pub fn customer_event(
    event_id: &str,
    event_type: &str,
    created: i64,
    customer: &str,
    email: &str,
) -> String {
    serde_json::json!({
        "id": event_id, "object": "event", "type": event_type, "created": created,
        "api_version": "2026-07-29.dahlia", "livemode": false, "pending_webhooks": 1,
        "data": {"object": {
            "id": customer, "object": "customer", "email": email, "name": "Ada Lovelace",
            "balance": -500, "currency": "eur", "delinquent": false, "created": 1_700_000_000,
            "livemode": false, "metadata": {"user_id": "42"}, "address": null,
            "default_source": {"id": "card_1", "object": "card"}, "invoice_prefix": "ABC",
            "tax_exempt": "none", "description": null, "phone": null
        }}
    })
    .to_string()
}

/// Queues `n` customer.created events, evt_{tag}0.. for cus_{tag}0.., one
/// second apart and the last one a second old.
pub fn ingest_customers(tag: &str, n: i64) {
    for i in 0..n {
        ingest_signed(&customer_event(
            &format!("evt_{tag}{i}"),
            "customer.created",
            now() - n + i,
            &format!("cus_{tag}{i}"),
            &format!("{tag}@example.com"),
        ));
    }
}

pub fn count(sql: &str) -> i64 {
    Spi::get_one::<i64>(sql).unwrap().unwrap()
}

pub fn text(sql: &str) -> Option<String> {
    Spi::get_one::<String>(sql).unwrap()
}

/// The first column of every row of `sql`, as text.
pub fn texts(sql: &str) -> Vec<String> {
    Spi::connect(|c| {
        c.select(sql, None, &[]).unwrap().filter_map(|r| r.get::<String>(1).unwrap()).collect()
    })
}

pub fn process() -> i32 {
    Spi::get_one::<i32>("SELECT stripe_sync.process_pending()").unwrap().unwrap()
}

/// Runs `sql` expecting an ERROR; returns it.
pub fn error_of(sql: &str, args: Vec<String>) -> Failure {
    let outcome = subxact::run(|| {
        let args: Vec<pgrx::datum::DatumWithOid> = args.iter().map(|a| a.as_str().into()).collect();
        Spi::connect_mut(|c| c.update(sql, None, &args).map(|_| ()))
    });
    match outcome {
        Err(f) => f,
        Ok(r) => panic!("expected an error from {sql}, got {r:?}"),
    }
}

pub fn ingest_error(payload: &str, header: &str) -> Failure {
    error_of("SELECT stripe_sync.ingest_event($1, $2)", vec![payload.into(), header.into()])
}

pub fn handler_setup() {
    Spi::run(
        "CREATE SEQUENCE public.calls;
         CREATE TABLE public.effects (event_id text, email text);
         CREATE FUNCTION public.flaky(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
         BEGIN
             IF nextval('public.calls') < 3 THEN
                 RAISE EXCEPTION 'flaky handler fails on call %', currval('public.calls');
             END IF;
             -- Handlers see the tables already updated by the event.
             INSERT INTO public.effects
             SELECT event->>'id', email FROM stripe_sync.customers WHERE id = event#>>'{data,object,id}';
         END $$;
         CREATE FUNCTION public.wrong(event text) RETURNS void LANGUAGE sql AS 'SELECT 1';
         CREATE FUNCTION public.noted(event jsonb) RETURNS void LANGUAGE sql AS
             $$ INSERT INTO public.effects VALUES (event->>'id', NULL) $$;",
    )
    .unwrap();
}

/// Of the row versions of `table` that hold `marker` (an event id prefix
/// of one test) and were written by a transaction still running (this
/// test's: what earlier runs rolled back is still in the pages, and tests
/// run at once): how many were replaced (an xmax that is not a lock only),
/// and how many carry a MultiXact as their xmax (HEAP_XMAX_IS_MULTI). From
/// every page, with pageinspect; None where pageinspect is not installed
/// (PostgreSQL 16 here, from the pgserver wheel, ships no contrib: README,
/// "Supported versions"), and a notice says that the check was left out.
pub fn replaced_versions(table: &str, marker: &str) -> Option<(i64, i64)> {
    if count("SELECT count(*) FROM pg_available_extensions WHERE name = 'pageinspect'") == 0 {
        notice!("pageinspect is not installed here: the xmax check of {table} is left out");
        return None;
    }
    Spi::run("CREATE EXTENSION IF NOT EXISTS pageinspect").unwrap();
    let ours = format!(
        "SELECT count(*) \
           FROM generate_series(0, pg_relation_size('{table}') / current_setting('block_size')::int - 1) p, \
                heap_page_items(get_raw_page('{table}', p::int)) \
          WHERE position(convert_to('{marker}', 'UTF8') IN t_data) > 0 \
            AND pg_xact_status(t_xmin::text::xid8) = 'in progress'"
    );
    let replaced = format!("{ours} AND t_xmax <> '0' AND t_infomask & x'0080'::int = 0");
    Some((count(&replaced), count(&format!("{ours} AND t_infomask & x'1000'::int <> 0"))))
}
