//! Maps the core's errors to SQLSTATEs and raises them. Each ingest failure has
//! its own code (README, "Errors"); messages never carry a secret, a signature
//! or the payload.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use stripe_sync_core::Error;

/// The SQLSTATE of each failure.
pub fn sqlstate(e: &Error) -> PgSqlErrorCode {
    use PgSqlErrorCode::*;
    match e {
        Error::NoSecret => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, // 55000
        Error::MissingHeader | Error::GarbledHeader(_) => ERRCODE_INVALID_TEXT_REPRESENTATION, // 22P02
        Error::NoMatchingSignature => ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, // 28000
        Error::StaleTimestamp { .. } => ERRCODE_DATETIME_FIELD_OVERFLOW,           // 22008
        Error::NotJson(_) => ERRCODE_INVALID_JSON_TEXT,                            // 22032
        Error::NotAnEvent(_) => ERRCODE_INVALID_PARAMETER_VALUE,                   // 22023
        Error::PayloadTooLarge { .. } => ERRCODE_PROGRAM_LIMIT_EXCEEDED,           // 54000
    }
}

fn hint(e: &Error) -> &'static str {
    match e {
        Error::NoSecret => {
            "set stripe_sync.webhook_secret to the endpoint's signing secret (whsec_...) in postgresql.conf or with ALTER SYSTEM, then reload"
        }
        Error::MissingHeader | Error::GarbledHeader(_) => {
            "pass the Stripe-Signature header of the request unchanged as the second argument"
        }
        Error::NoMatchingSignature => {
            "pass the raw request body unchanged and check that stripe_sync.webhook_secret is this endpoint's secret"
        }
        Error::StaleTimestamp { .. } => {
            "check the database server's clock; Stripe retries a delivery with a fresh signature"
        }
        Error::NotJson(_) | Error::NotAnEvent(_) => "pass the raw body of a Stripe webhook request",
        Error::PayloadTooLarge { .. } => {
            "raise stripe_sync.max_payload_bytes if such events are expected"
        }
    }
}

/// Raises `e` as an ERROR; never returns.
pub fn raise(e: Error) -> ! {
    ErrorReport::new(sqlstate(&e), e.to_string(), "stripe_sync")
        .set_hint(hint(&e))
        .report(PgLogLevel::ERROR);
    unreachable!("an ERROR does not return")
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
