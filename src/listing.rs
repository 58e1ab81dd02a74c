//! Reading Stripe's lists and objects for backfill, catch-up, re-reads and
//! verify: one object, one list page, the rest of an embedded child list, a
//! customer's own list, and which customers of the mirror to list next. HTTP
//! only (and one read of the mirror); never inside a transaction that holds
//! locks.

use crate::stripe;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use serde_json::Value;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::objects::{self, Resource};
use stripe_sync_core::pagination::{self, Page};

/// Customers whose objects a per-customer listing handles (and one backfill
/// transaction commits) together.
pub const CUSTOMERS_PER_COMMIT: i64 = 20;

/// One object (or any GET of the API).
pub fn get(
    path: &str,
    query: &[(String, String)],
    account: Option<&str>,
) -> Result<Value, ApiError> {
    stripe::request(stripe::Method::Get, path, query, account)
}

/// Fetches a list page.
pub fn list_page(
    path: &str,
    query: &[(String, String)],
    account: Option<&str>,
) -> Result<Page, ApiError> {
    let body = get(path, query, account)?;
    pagination::page_of(body).map_err(ApiError::malformed)
}

/// Every page of a list from `after` on, until it ends; `on_404` is what a
/// list that is not there (404) holds.
fn list_all(
    path: &str,
    base: &[(String, String)],
    account: Option<&str>,
    missing_is_empty: bool,
) -> Result<Vec<Value>, ApiError> {
    let mut objects = Vec::new();
    let mut after: Option<String> = None;
    loop {
        check_for_interrupts!();
        let mut query = base.to_vec();
        query.extend(pagination::list_query(&[], after.as_deref(), None));
        let page = match list_page(path, &query, account) {
            Ok(page) => page,
            Err(e) if missing_is_empty && e.status() == Some(404) => break,
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
            let rest = list_all(&path, &base, account, false)?;
            pagination::complete_list(object, child.list, rest);
        }
    }
    Ok(())
}

/// Every object of one customer's list (e.g. its payment methods);
/// nothing when Stripe no longer has the customer.
pub fn list_of_customer(
    resource: &Resource,
    customer: &str,
    account: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let Some(path) = resource.customer_path(customer) else { return Ok(Vec::new()) };
    let base: Vec<(String, String)> =
        resource.list_params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    list_all(&path, &base, account, true)
}

/// The next customers of `account` in the mirror after `after` (by id),
/// created at or after `created_gte` if given, with their created times.
pub fn customers_after(
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
