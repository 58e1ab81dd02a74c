//! Pure logic of stripe_sync: everything that needs no database and no network.
//!
//! Words used throughout: an *event* is one Stripe webhook Event envelope
//! (`object: "event"`); an *object* is the Stripe resource inside it
//! (`data.object`: a customer, an invoice, ...); a *table* is where objects of
//! one type are mirrored.

pub mod alert;
pub mod backoff;
pub mod chains;
pub mod error;
pub mod event;
pub mod form;
pub mod http;
pub mod job;
pub mod json;
pub mod jsonb;
pub mod mapping;
pub mod money;
pub mod objects;
pub mod pagination;
pub mod ratelimit;
pub mod retry;
pub mod shares;
pub mod signature;
pub mod slices;
pub mod sqlstate;
pub mod watermark;

pub use error::Error;

/// Stripe's published fixtures (`shared/stripe` next to the project, or
/// `$STRIPE_SHARED`), for the tests that check against them when present.
#[cfg(test)]
pub(crate) fn shared_stripe() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let dir = std::env::var_os("STRIPE_SHARED").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/stripe")
    });
    dir.join("openapi/resources.json").exists().then_some(dir)
}
