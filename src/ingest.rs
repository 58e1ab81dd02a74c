//! The webhook path: verify, parse, insert once, wake the worker after commit.
//! Never calls Stripe and never applies: it stays one signature check and one
//! insert however many events arrive.

use crate::{config, jsonb, queue, shmem};
use stripe_sync_core::{Error, event, signature};

/// What ingest did with a verified event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Queued,
    Duplicate,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Queued => "queued",
            Outcome::Duplicate => "duplicate",
        }
    }
}

/// Checks in order: size, a configured secret, the signature (then its age),
/// the event's shape. Any failure returns before anything is stored.
pub fn ingest(payload: Option<&str>, header: Option<&str>) -> Result<Outcome, Error> {
    let payload = payload.ok_or(Error::NotJson("the payload is NULL".into()))?;
    event::check_size(payload, config::max_payload_bytes())?;
    let secrets = config::webhook_secret_list();
    signature::verify(
        payload.as_bytes(),
        header.unwrap_or(""),
        &signature::split_secrets(&secrets),
        config::signature_tolerance_seconds(),
        chrono::Utc::now().timestamp(),
    )?;
    let meta = event::parse_event(payload, config::max_payload_bytes())?;
    let data = jsonb::from_text(payload).map_err(|e| match e.as_str() {
        stripe_sync_core::jsonb::NUMBER_OUT_OF_RANGE => {
            Error::NotAnEvent(stripe_sync_core::jsonb::NUMBER_OUT_OF_RANGE)
        }
        _ => Error::NotJson(e),
    })?;
    if queue::insert(&meta, data) {
        shmem::wake_worker_after_commit();
        Ok(Outcome::Queued)
    } else {
        Ok(Outcome::Duplicate)
    }
}
