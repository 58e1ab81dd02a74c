//! The one error type of the pure core. The extension maps each variant to a
//! documented SQLSTATE; messages never contain a secret, a signature or a payload.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `stripe_sync.webhook_secret` is empty.
    NoSecret,
    /// The `Stripe-Signature` header is empty or absent.
    MissingHeader,
    /// The header could not be read (the reason says which part).
    GarbledHeader(&'static str),
    /// No `v1` value matches the payload under any configured secret.
    NoMatchingSignature,
    /// The signature is valid but its timestamp is too far from now.
    StaleTimestamp { age_seconds: i64, tolerance_seconds: i64 },
    /// The body is larger than `stripe_sync.max_payload_bytes`.
    PayloadTooLarge { size: usize, max: usize },
    /// The body is not JSON (the parser's reason, which quotes no input).
    NotJson(String),
    /// The body is JSON but not a Stripe event (the reason says what is missing).
    NotAnEvent(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSecret => write!(f, "no webhook signing secret is configured"),
            Error::MissingHeader => write!(f, "missing Stripe-Signature header"),
            Error::GarbledHeader(why) => write!(f, "malformed Stripe-Signature header: {why}"),
            Error::NoMatchingSignature => {
                write!(f, "no signature in the Stripe-Signature header matches the payload")
            }
            Error::StaleTimestamp { age_seconds, tolerance_seconds } => write!(
                f,
                "signature timestamp is {age_seconds} s away from now, outside the tolerance of {tolerance_seconds} s"
            ),
            Error::PayloadTooLarge { size, max } => {
                write!(f, "payload of {size} bytes is over the limit of {max} bytes")
            }
            Error::NotJson(why) => write!(f, "payload is not valid JSON: {why}"),
            Error::NotAnEvent(why) => write!(f, "payload is not a Stripe event: {why}"),
        }
    }
}

impl std::error::Error for Error {}
