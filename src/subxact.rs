//! Runs a closure in a subtransaction: an ERROR inside rolls back only what the
//! closure did and comes back as a value, so one bad event cannot sink its
//! batch or the worker. (pgrx has no wrapper for this; this is the pattern
//! PL/pgSQL's BEGIN ... EXCEPTION uses.)

use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;

/// What went wrong inside the subtransaction.
#[derive(Debug, Clone)]
pub struct Failure {
    pub sqlstate: String,
    pub message: String,
}

pub fn run<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T, Failure> {
    // SAFETY: we are inside a transaction (worker batch or SQL call); the
    // context and owner are restored on both paths, as PL/pgSQL does.
    let (context, owner) = unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    unsafe {
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
    }
    let result = PgTryBuilder::new(|| Ok(f())).catch_others(|e| Err(failure(e))).execute();
    unsafe {
        match result {
            Ok(_) => pg_sys::ReleaseCurrentSubTransaction(),
            Err(_) => pg_sys::RollbackAndReleaseCurrentSubTransaction(),
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
    }
    result
}

/// For code that runs between transactions and opens its own (a worker's
/// loop): runs `f`, catching an ERROR; the transaction it interrupted, if
/// any, is aborted, so the caller can go on.
pub fn catch_between_transactions<T>(
    f: impl FnOnce() -> T + std::panic::UnwindSafe,
) -> Result<T, Failure> {
    PgTryBuilder::new(|| Ok(f()))
        .catch_others(|e| {
            unsafe { pg_sys::AbortOutOfAnyTransaction() };
            Err(failure(e))
        })
        .execute()
}

/// What a caught error says.
pub fn failure(e: CaughtError) -> Failure {
    match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
            Failure { sqlstate: sqlstate_text(r.sql_error_code()), message: r.message().to_owned() }
        }
        CaughtError::RustPanic { ereport, .. } => Failure {
            sqlstate: sqlstate_text(ereport.sql_error_code()),
            message: ereport.message().to_owned(),
        },
    }
}

/// The five-character SQLSTATE of a code (PostgreSQL packs it six bits a character).
pub fn sqlstate_text(code: pgrx::PgSqlErrorCode) -> String {
    let packed = code as isize;
    (0..5).map(|i| (((packed >> (6 * i)) & 0x3F) as u8 + b'0') as char).collect()
}

/// The code of a five-character SQLSTATE (38000 when it is not one).
pub fn sqlstate_from_text(text: &str) -> pgrx::PgSqlErrorCode {
    let b = text.as_bytes();
    if b.len() != 5 || !b.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
        return pgrx::PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;
    }
    let packed: isize =
        b.iter().enumerate().map(|(i, c)| (((*c - b'0') as isize) & 0x3F) << (6 * i)).sum();
    pgrx::PgSqlErrorCode::from(packed)
}
