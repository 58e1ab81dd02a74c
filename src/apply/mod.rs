//! Applies a batch of events to the synced tables: per mirrored object type one
//! set-based statement, generated from the core's mapping spec. No HTTP here.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use std::sync::OnceLock;
use stripe_sync_core::mapping::{self, SPECS};

/// One generated statement per spec, in SPECS order.
fn statements() -> &'static [String] {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    SQL.get_or_init(|| SPECS.iter().map(mapping::apply_sql).collect())
}

/// Applies the events `ids`, whose object types are `object_types`; returns
/// how many rows were written.
pub fn apply(ids: &[&str], object_types: &[&str]) -> i64 {
    let mut written = 0;
    for (spec, sql) in SPECS.iter().zip(statements()) {
        if !object_types.contains(&spec.object) {
            continue;
        }
        let args: [DatumWithOid; 1] = [ids.to_vec().into()];
        written += Spi::connect_mut(|client| {
            client
                .update(sql.as_str(), None, &args)
                .expect("apply statement")
                .first()
                .get_one::<i64>()
                .expect("row count")
                .unwrap_or(0)
        });
    }
    written
}

/// The object types we mirror, as stored in `events.object_type`.
pub fn mirrored_objects() -> Vec<&'static str> {
    mapping::mirrored_objects()
}
