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
use stripe_sync_core::objects::{self, Listing, Resource, Written};
use stripe_sync_core::pagination::{self, Page};

/// Parents (customers, products) whose objects a per-parent listing handles
/// (and one backfill transaction commits) together.
pub const PARENTS_PER_COMMIT: i64 = 20;

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

/// A GET of the API (path and query): this backend's own requests
/// ([`get`]), or a request thread's (`crate::inflight`).
pub type Get<'a> = &'a dyn Fn(&str, &[(String, String)]) -> Result<Value, ApiError>;

/// Every page of a list, until it ends.
pub fn list_all(
    path: &str,
    base: &[(String, String)],
    account: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    list_all_with(&|p, q| get(p, q, account), path, base)
}

/// [`list_all`] through `get`.
pub fn list_all_with(
    get: Get,
    path: &str,
    base: &[(String, String)],
) -> Result<Vec<Value>, ApiError> {
    let mut objects = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = base.to_vec();
        query.extend(pagination::list_query(&[], after.as_deref(), None));
        let page = pagination::page_of(get(path, &query)?).map_err(ApiError::malformed)?;
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
    complete_children_with(&|p, q| get(p, q, account), objects)
}

/// [`complete_children`] through `get`.
pub fn complete_children_with(get: Get, objects: &mut [Value]) -> Result<(), ApiError> {
    for object in objects.iter_mut() {
        let Some(kind) = object.get("object").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let Some(spec) = stripe_sync_core::mapping::spec_for(&kind) else { continue };
        let Some(id) = object.get(spec.key).and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        for child in spec.children {
            if !pagination::list_is_partial(object, child.list) {
                continue;
            }
            let Some((path, base)) = objects::child_list(&kind, child.list, &id) else { continue };
            let rest = list_all_with(get, &path, &base)?;
            pagination::complete_list(object, child.list, rest);
        }
    }
    Ok(())
}

/// Every object of one parent's list (a customer's payment methods, a
/// product's features); None when Stripe no longer has the parent. For lists
/// of objects that name their parent, any 404 is taken so (as 0.5.0 did);
/// for a summary or listed children, which replace what the mirror holds,
/// only a 404 `resource_missing`: another 404 is a server without that list
/// (localstripe), an error rather than an empty set.
pub fn list_of_parent(
    resource: &Resource,
    parent: &str,
    account: Option<&str>,
) -> Result<Option<Vec<Value>>, ApiError> {
    let Listing::PerParent { written, .. } = resource.listing else { return Ok(Some(Vec::new())) };
    let Some((path, base)) = resource.parent_list(parent) else { return Ok(Some(Vec::new())) };
    match list_all(&path, &base, account) {
        Err(ApiError::Refused { status: 404, code, .. })
            if written == Written::Objects || code.as_deref() == Some("resource_missing") =>
        {
            Ok(None)
        }
        other => other.map(Some),
    }
}

/// The next live rows of `parent_table` (customers, products) of `account`
/// in the mirror after `after` (by id), created at or after `created_gte` if
/// given, with their created times.
pub fn parents_after(
    parent_table: &str,
    account: &str,
    after: Option<&str>,
    created_gte: Option<i64>,
) -> Vec<(String, Option<i64>)> {
    let args: [DatumWithOid; 4] =
        [account.into(), after.into(), created_gte.into(), PARENTS_PER_COMMIT.into()];
    // The table is one of the mapping's own names, never user input.
    let sql = format!(
        "SELECT id, extract(epoch FROM created)::bigint FROM stripe_sync.{parent_table}
          WHERE _account_id = $1 AND NOT _deleted
            AND ($2::text IS NULL OR id > $2)
            AND ($3::bigint IS NULL OR created >= to_timestamp($3))
          ORDER BY id LIMIT $4"
    );
    Spi::connect(|c| {
        c.select(&sql, None, &args)
            .expect("parents to list")
            .filter_map(|r| {
                Some((r.get::<String>(1).ok().flatten()?, r.get::<i64>(2).ok().flatten()))
            })
            .collect()
    })
}
