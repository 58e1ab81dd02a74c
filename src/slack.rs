//! Posts one message to the Slack incoming webhook (stripe_sync.slack_webhook_url)
//! and says what came of it. One attempt, no waiting: alerts.rs decides when
//! to try again. The URL is a secret: no message built here contains it.

use crate::stripe;
use std::time::Duration;
use stripe_sync_core::backoff::parse_retry_after;

/// What one POST came to.
#[derive(Debug)]
pub enum Outcome {
    Sent,
    /// Worth trying again (network error, 429, 5xx): after `after` if Slack said.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Slack refused the message (another 4xx): retrying as is will not help much.
    Refused {
        error: String,
    },
}

pub fn post(url: &str, text: &str) -> Outcome {
    let body = serde_json::json!({ "text": text }).to_string();
    let response =
        stripe::agent().post(url).header("Content-Type", "application/json").send(body.as_bytes());
    let mut response = match response {
        Ok(r) => r,
        // ureq's error text may name the host or the URL: keep only its kind.
        // A URL that cannot be a URL never goes through: fail it, do not retry it forever.
        Err(e @ (ureq::Error::BadUri(_) | ureq::Error::Http(_))) => {
            return Outcome::Refused { error: network_error(&e).into() };
        }
        Err(e) => return Outcome::Retry { error: network_error(&e).into(), after: None },
    };
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Outcome::Sent;
    }
    let after = response
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    // Slack answers errors with a short token (invalid_payload, no_service, ...).
    let answer: String = response
        .body_mut()
        .with_config()
        .limit(4096)
        .read_to_string()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ' ')
        .take(100)
        .collect();
    let error = format!("Slack answered HTTP {status} {}", answer.trim()).trim_end().to_owned();
    if status == 429 || status == 408 || status >= 500 {
        Outcome::Retry { error, after }
    } else {
        Outcome::Refused { error }
    }
}

fn network_error(e: &ureq::Error) -> &'static str {
    match e {
        ureq::Error::Timeout(_) => {
            "no answer from Slack in time (stripe_sync.connect_timeout / read_timeout)"
        }
        ureq::Error::HostNotFound => "the Slack webhook host was not found",
        ureq::Error::ConnectionFailed => "could not connect to the Slack webhook",
        ureq::Error::Io(_) => "network error talking to the Slack webhook",
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            "stripe_sync.slack_webhook_url is not a valid URL"
        }
        _ => "error talking to the Slack webhook",
    }
}
