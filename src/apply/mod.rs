//! Applies batches to the synced tables: per mirrored object type one
//! set-based statement, generated from the core's mapping spec, for events
//! from the queue or for objects fetched from the API. No HTTP here.

use crate::plans;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use std::sync::OnceLock;
use stripe_sync_core::mapping::{self, SPECS, Source};
use stripe_sync_core::objects::{self, Listing, Resource, Written};
use stripe_sync_core::pagination::RawPage;

const HISTORY_FROM_EVENTS: &str = include_str!("../../sql/queries/subscription_history_events.sql");
const HISTORY_FROM_OBJECTS: &str =
    include_str!("../../sql/queries/subscription_history_objects.sql");

/// One generated statement per spec and source, in SPECS order.
fn statements(source: Source) -> &'static [String] {
    static EVENTS: OnceLock<Vec<String>> = OnceLock::new();
    static OBJECTS: OnceLock<Vec<String>> = OnceLock::new();
    let cell = match source {
        Source::Events => &EVENTS,
        Source::Objects => &OBJECTS,
    };
    cell.get_or_init(|| SPECS.iter().map(|s| mapping::apply_sql(s, source)).collect())
}

/// Applies the queued events `ids`, with `types[i]` the object type of
/// `ids[i]`: each spec's statement gets only its own events, through a kept
/// plan. Returns how many rows were written.
pub fn apply_events(ids: &[&str], types: &[Option<&str>]) -> i64 {
    let mut written = 0;
    for (spec, sql) in SPECS.iter().zip(statements(Source::Events)) {
        let mine: Vec<&str> = ids
            .iter()
            .zip(types)
            .filter(|(_, t)| **t == Some(spec.object))
            .map(|(id, _)| *id)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let args: [DatumWithOid; 1] = [mine.into()];
        written += Spi::connect_mut(|client| {
            plans::execute(client, sql.as_str(), &[plans::types::TEXT_ARRAY], &args, |rows| {
                rows.first().get_one::<i64>().expect("row count").unwrap_or(0)
            })
        });
        if spec.object == "subscription" {
            // Every state, for stripe_sync.mrr_history(), beside the newest in the table.
            Spi::connect_mut(|client| {
                plans::execute(
                    client,
                    HISTORY_FROM_EVENTS,
                    &[plans::types::TEXT_ARRAY],
                    &args,
                    |_| (),
                )
            });
        }
    }
    written
}

/// Runs each spec's statement whose object type is in `object_types`, through
/// its kept plan.
fn run(source: Source, object_types: &[&str], args: &[DatumWithOid]) -> i64 {
    let mut written = 0;
    for (spec, sql) in SPECS.iter().zip(statements(source)) {
        if !object_types.contains(&spec.object) {
            continue;
        }
        written += Spi::connect_mut(|client| {
            plans::execute(client, sql.as_str(), OBJECT_ARGS, args, |rows| {
                rows.first().get_one::<i64>().expect("row count").unwrap_or(0)
            })
        });
    }
    written
}

/// Parameters of the statements that apply objects: the objects (a jsonb
/// array), when they were fetched, the connected account.
const OBJECT_ARGS: &[pgrx::PgOid] =
    &[plans::types::JSONB, plans::types::TIMESTAMPTZ, plans::types::TEXT];

/// Applies objects fetched from the API at `fetched_at` (for the connected
/// `account`, if any); returns how many rows were written.
pub fn apply_objects(
    objects: &[serde_json::Value],
    fetched_at: pgrx::datum::TimestampWithTimeZone,
    account: Option<&str>,
) -> i64 {
    let mut types: Vec<&str> =
        objects.iter().filter_map(|o| o.get("object").and_then(|t| t.as_str())).collect();
    types.sort_unstable();
    types.dedup();
    let text = serde_json::to_string(objects).expect("objects serialize");
    apply_json(&text, None, &types, fetched_at, account)
}

/// Applies a list page as the API sent it (`{"data": [...], ...}`), `types`
/// being the object types on it: its text goes to jsonb once, with no tree
/// built and serialized again on our side.
pub fn apply_page(
    page: &RawPage,
    fetched_at: pgrx::datum::TimestampWithTimeZone,
    account: Option<&str>,
) -> i64 {
    apply_json(&page.body, Some("data"), &page.object_types(), fetched_at, account)
}

fn apply_json(
    text: &str,
    field: Option<&str>,
    types: &[&str],
    fetched_at: pgrx::datum::TimestampWithTimeZone,
    account: Option<&str>,
) -> i64 {
    let args: [DatumWithOid; 3] = [jsonb(text, field), fetched_at.into(), account.into()];
    let written = run(Source::Objects, types, &args);
    if types.contains(&"subscription") {
        Spi::connect_mut(|client| {
            plans::execute(client, HISTORY_FROM_OBJECTS, OBJECT_ARGS, &args, |_| ())
        });
    }
    written
}

/// JSON text as a jsonb datum, or its member `field` (see `crate::jsonb`).
/// The text came from Stripe and was already scanned, so an error here is a
/// page jsonb cannot hold (a `\u0000`): the statement fails with it.
fn jsonb(text: &str, field: Option<&str>) -> DatumWithOid<'static> {
    let datum = match field {
        Some(field) => crate::jsonb::member_from_text(text, field),
        None => crate::jsonb::from_text(text),
    };
    let datum = datum.unwrap_or_else(|e| {
        crate::errors::raise_with_code(
            PgSqlErrorCode::ERRCODE_INVALID_JSON_TEXT,
            format!("a Stripe response cannot be stored as jsonb: {e}"),
        )
    });
    // SAFETY: a jsonb datum in the current memory context.
    unsafe { DatumWithOid::new(datum, pg_sys::JSONBOID) }
}

/// Writes what a per-parent listing found (`listed`: each parent with every
/// object of its list, fetched at `fetched_at`): the objects themselves, one
/// summary per parent (a customer's active entitlements, as Stripe's event
/// carries it), or the parent's rows of a listed child table, replaced.
/// Returns the rows written.
pub fn apply_listed(
    resource: &Resource,
    listed: Vec<(String, Vec<serde_json::Value>)>,
    fetched_at: pgrx::datum::TimestampWithTimeZone,
    account: Option<&str>,
) -> i64 {
    let Listing::PerParent { written, .. } = resource.listing else { return 0 };
    match written {
        Written::Objects => {
            let objects: Vec<_> = listed.into_iter().flat_map(|(_, objects)| objects).collect();
            apply_objects(&objects, fetched_at, account)
        }
        Written::Summary => {
            let summaries: Vec<_> = listed
                .into_iter()
                .map(|(parent, objects)| objects::summary_of(&parent, objects))
                .collect();
            apply_objects(&summaries, fetched_at, account)
        }
        Written::Children => {
            let Some(sql) = listed_statement(resource.object) else { return 0 };
            let groups: Vec<_> = listed
                .into_iter()
                .map(|(parent, items)| serde_json::json!({"parent": parent, "items": items}))
                .collect();
            let text = serde_json::to_string(&groups).expect("listed children serialize");
            let args: [DatumWithOid; 2] = [jsonb(&text, None), account.into()];
            Spi::connect_mut(|client| {
                plans::execute(
                    client,
                    sql,
                    &[plans::types::JSONB, plans::types::TEXT],
                    &args,
                    |rows| rows.first().get_one::<i64>().expect("row count").unwrap_or(0),
                )
            })
        }
    }
}

/// The statement that replaces the rows of the listed child table of
/// `object` (mapping::LISTED), made once.
fn listed_statement(object: &str) -> Option<&'static str> {
    static STATEMENTS: OnceLock<Vec<String>> = OnceLock::new();
    let all = STATEMENTS.get_or_init(|| {
        mapping::LISTED.iter().map(|l| mapping::listed_children_sql(&l.child)).collect()
    });
    mapping::LISTED.iter().position(|l| l.object == object).map(|i| all[i].as_str())
}

/// Thin events `ids` point at their objects: each object of a type read by
/// id is asked for through `refresh_requests` (the worker's re-reads, with
/// an API key), in one statement. A request already waiting is stamped
/// anew, as for a tie: a fetch begun before this event does not settle it.
pub fn request_objects(ids: &[&str]) {
    static READABLE: OnceLock<Vec<&'static str>> = OnceLock::new();
    let readable = READABLE.get_or_init(|| {
        SPECS
            .iter()
            .map(|s| s.object)
            .filter(|o| objects::resource(o).is_some_and(|r| r.retrieve))
            .collect()
    });
    let args: [DatumWithOid; 2] = [ids.to_vec().into(), readable.clone().into()];
    Spi::connect_mut(|client| {
        plans::execute(
            client,
            REQUEST_OBJECTS,
            &[plans::types::TEXT_ARRAY, plans::types::TEXT_ARRAY],
            &args,
            |_| (),
        )
    });
}

const REQUEST_OBJECTS: &str = include_str!("../../sql/queries/request_objects.sql");

/// The object types we mirror, as stored in `events.object_type`.
pub fn mirrored_objects() -> Vec<&'static str> {
    mapping::mirrored_objects()
}
