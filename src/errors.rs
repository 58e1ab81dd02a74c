//! Raises the core's errors as SQL errors, with the SQLSTATE (and hint) that
//! `stripe_sync_core::sqlstate` maps each to (README, "Errors"); messages
//! never carry a secret, a signature or the payload.

use crate::subxact::sqlstate_from_text;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use stripe_sync_core::Error;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::sqlstate;

/// Raises an ingest failure as an ERROR; never returns.
pub fn raise(e: Error) -> ! {
    ErrorReport::new(sqlstate_from_text(sqlstate::of_ingest(&e)), e.to_string(), "stripe_sync")
        .set_hint(sqlstate::ingest_hint(&e))
        .report(PgLogLevel::ERROR);
    unreachable!("an ERROR does not return")
}

/// The SQLSTATE of an API failure.
pub fn api_sqlstate(e: &ApiError) -> PgSqlErrorCode {
    sqlstate_from_text(sqlstate::of_api(e))
}

/// Raises an API failure as an ERROR; never returns.
pub fn raise_api(e: ApiError) -> ! {
    raise_with_code(api_sqlstate(&e), e.describe())
}

/// Raises an ERROR with a hint saying what to do; never returns.
pub fn raise_with_hint(code: PgSqlErrorCode, message: String, hint: String) -> ! {
    ErrorReport::new(code, message, "stripe_sync").set_hint(hint).report(PgLogLevel::ERROR);
    unreachable!("an ERROR does not return")
}

/// Raises an ERROR with the given code; never returns.
pub fn raise_with_code(code: PgSqlErrorCode, message: String) -> ! {
    ErrorReport::new(code, message, "stripe_sync").report(PgLogLevel::ERROR);
    unreachable!("an ERROR does not return")
}

/// Raises again, with its own SQLSTATE, a failure caught from a job or a
/// subtransaction; never returns.
pub fn reraise(code: &str, message: String) -> ! {
    raise_with_code(sqlstate_from_text(code), message)
}
