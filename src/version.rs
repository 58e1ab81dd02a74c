//! The extension's installed SQL version against this library's. A library
//! newer than the schema (installed, but `ALTER EXTENSION stripe_sync UPDATE`
//! not yet run) must not apply: its statements use tables the old schema
//! lacks. The worker waits and says so; process_pending() raises.

use pgrx::prelude::*;

pub const LIBRARY: &str = env!("CARGO_PKG_VERSION");

/// The installed version of the extension in this database, if it is installed.
pub fn installed() -> Option<String> {
    Spi::get_one::<String>(
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'stripe_sync'",
    )
    .ok()
    .flatten()
}

/// Whether the installed schema is this library's version. Once it is, this
/// backend remembers it (a schema is never downgraded under a library), so
/// the hot path asks only until then.
pub fn is_current() -> bool {
    thread_local! {
        static CURRENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if CURRENT.get() {
        return true;
    }
    let current = installed().as_deref() == Some(LIBRARY);
    CURRENT.set(current);
    current
}

/// Raises unless the installed schema is this library's version.
pub fn require_current() {
    match installed() {
        Some(v) if v == LIBRARY => {}
        Some(v) => crate::errors::raise_with_hint(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the stripe_sync schema is version {v} but the library is {LIBRARY}"),
            "Run ALTER EXTENSION stripe_sync UPDATE.".to_owned(),
        ),
        None => crate::errors::raise_with_hint(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "extension stripe_sync is not installed in this database".to_owned(),
            "CREATE EXTENSION stripe_sync.".to_owned(),
        ),
    }
}
