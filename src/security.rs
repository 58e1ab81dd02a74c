//! Who runs what (docs/security.md). Two rules, in one place:
//!
//! 1. A process of ours that holds more rights than the role that caused its
//!    work (the worker, apply helpers, job workers) resolves names only in
//!    `pg_catalog` and our schema: [`pin_session`] fixes its `search_path`
//!    to `pg_catalog, pg_temp` before it prepares or keeps any plan (our SQL
//!    names our schema explicitly, and `pg_temp` is never searched for
//!    functions or operators). SQL functions get the same path from their
//!    `SET search_path` clause (sql/stripe_sync--0.5.0--0.6.0.sql).
//! 2. Code that is not ours (a users table's triggers, casts, defaults and
//!    index expressions; an event handler) runs as the role it belongs to,
//!    inside a security-restricted operation, the way PostgreSQL's own
//!    maintenance commands run a table owner's code ([`Restricted`]): that
//!    role's rights only, no SET ROLE or SET SESSION AUTHORIZATION, no
//!    temporary objects, and every setting it changes undone on the way out,
//!    so nothing it does outlives the call in the session that called it.

use pgrx::prelude::*;

/// The only search_path our privileged code runs with.
pub const SAFE_SEARCH_PATH: &std::ffi::CStr = c"pg_catalog, pg_temp";

/// Pins this session's search_path (and what RESET gives) to
/// [`SAFE_SEARCH_PATH`]. A background worker calls it right after it connects,
/// before its first statement: a database's or role's `search_path` setting
/// then never reaches our plans.
pub fn pin_session() {
    // PGC_S_OVERRIDE also makes it the reset value, so RESET ALL comes back here.
    unsafe {
        pg_sys::SetConfigOption(
            c"search_path".as_ptr(),
            SAFE_SEARCH_PATH.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_OVERRIDE,
        );
    }
}

/// The current user switched to `role` for as long as the value lives, inside
/// a security-restricted operation, with its own GUC nest level whose
/// search_path is [`SAFE_SEARCH_PATH`]. Dropping it undoes every setting
/// changed meanwhile (even a plain SET) and restores the user and security
/// context; an ERROR unwinding through it does the same on its way to the
/// (sub)transaction abort, which would restore the user too.
pub struct Restricted {
    user: pg_sys::Oid,
    context: i32,
    nest_level: i32,
}

impl Restricted {
    pub fn enter(role: pg_sys::Oid) -> Restricted {
        let mut user = pg_sys::InvalidOid;
        let mut context = 0;
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
            pg_sys::SetUserIdAndSecContext(
                role,
                context
                    | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                    | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
            );
            let guard = Restricted { user, context, nest_level: pg_sys::NewGUCNestLevel() };
            guard.set(c"search_path", SAFE_SEARCH_PATH);
            guard
        }
    }

    /// Sets `name` to `value` until the value is dropped (like SET LOCAL,
    /// at this guard's nest level).
    fn set(&self, name: &std::ffi::CStr, value: &std::ffi::CStr) {
        unsafe {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
    }
}

impl Drop for Restricted {
    fn drop(&mut self) {
        unsafe {
            pg_sys::AtEOXact_GUC(false, self.nest_level);
            pg_sys::SetUserIdAndSecContext(self.user, self.context);
        }
    }
}

/// Runs `f` with the rights of `role`, restricted (see [`Restricted`]), with
/// `lock_timeout` 5 s: a lock the table's owner holds cannot stall the worker.
/// (statement_timeout is armed only for a client's statements, never inside a
/// background worker: code of the owner's that runs long does delay
/// provisioning; docs/security.md says so.) How we read and write a table
/// that is not ours, as its owner (users.rs).
pub fn as_role<T>(role: pg_sys::Oid, f: impl FnOnce() -> T) -> T {
    let guard = Restricted::enter(role);
    guard.set(c"lock_timeout", c"5s");
    f()
}

/// Runs `f` as the owner of the extension (who owns every table of schema
/// stripe_sync), restricted: how a trigger fired by an application's role
/// writes our outbox without that role holding any right on it.
pub fn as_extension_owner<T>(f: impl FnOnce() -> T) -> T {
    let owner = Spi::get_one::<pg_sys::Oid>(
        "SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'stripe_sync'::pg_catalog.name",
    )
    .ok()
    .flatten()
    .unwrap_or(pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID));
    let _owner = Restricted::enter(owner);
    f()
}
