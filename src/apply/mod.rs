//! Applies batches to the synced tables: per mirrored object type one
//! set-based statement, generated from the core's mapping spec, for events
//! from the queue or for objects fetched from the API. No HTTP here.

use crate::plans;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use std::sync::OnceLock;
use stripe_sync_core::mapping::{self, SPECS, Source};
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

/// The object types we mirror, as stored in `events.object_type`.
pub fn mirrored_objects() -> Vec<&'static str> {
    mapping::mirrored_objects()
}
