//! Pure logic of stripe_sync: everything that needs no database and no network.
//!
//! Words used throughout: an *event* is one Stripe webhook Event envelope
//! (`object: "event"`); an *object* is the Stripe resource inside it
//! (`data.object`: a customer, an invoice, ...); a *table* is where objects of
//! one type are mirrored.

pub mod alert;
pub mod backoff;
pub mod error;
pub mod event;
pub mod form;
pub mod http;
pub mod mapping;
pub mod money;
pub mod objects;
pub mod pagination;
pub mod ratelimit;
pub mod signature;

pub use error::Error;
