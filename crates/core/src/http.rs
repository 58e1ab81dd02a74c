//! Stripe's HTTP conventions that need no network: which answers to retry,
//! how its errors read, and keeping keys out of messages.

use serde_json::Value;

/// Whether a request that got `status` (None: no answer, a network error or
/// timeout) should be tried again. Stripe's `Stripe-Should-Retry` header, when
/// present, decides; otherwise 409 (lock contention), 429 and 5xx are retried,
/// other 4xx never.
pub fn should_retry(status: Option<u16>, stripe_should_retry: Option<&str>) -> bool {
    match stripe_should_retry.map(str::trim) {
        Some("true") => return true,
        Some("false") => return false,
        _ => {}
    }
    match status {
        None => true,
        Some(s) => s == 409 || s == 429 || s >= 500,
    }
}

/// What went wrong with a call of the Stripe API, or before it could be made.
/// Its SQLSTATE is chosen in one place (`crate::sqlstate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// Stripe answered with an error status; its `{"error": {...}}` body read.
    Refused {
        status: u16,
        error_type: Option<String>,
        code: Option<String>,
        message: String,
        request_id: Option<String>,
    },
    /// No usable answer: a network error, a timeout, a body cut short or
    /// garbled (`status`: the status of a garbled answer, if one came).
    Unreachable { message: String, status: Option<u16>, request_id: Option<String> },
    /// Nothing can be asked: no API key is configured, or no table is provisioned.
    NotConfigured(String),
    /// The users row a customer is asked for is not there.
    NoUser(String),
    /// A bad argument: an id of no mirrored type, several users tables to choose from.
    InvalidArgument(String),
    /// A step beside the call failed and may succeed later (reading or
    /// writing the users row): the message says which.
    Local(String),
}

impl ApiError {
    /// Reads Stripe's `{"error": {"type", "code", "message"}}` body.
    pub fn from_response(status: u16, body: &str, request_id: Option<&str>) -> ApiError {
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        let err = parsed.as_ref().and_then(|v| v.get("error"));
        let field =
            |name: &str| err.and_then(|e| e.get(name)).and_then(Value::as_str).map(str::to_owned);
        ApiError::Refused {
            status,
            error_type: field("type"),
            code: field("code"),
            message: field("message")
                .unwrap_or_else(|| format!("HTTP {status} without a Stripe error body")),
            request_id: request_id.map(str::to_owned),
        }
    }

    /// No answer (a network error, a timeout).
    pub fn network(message: impl Into<String>) -> ApiError {
        ApiError::Unreachable { message: message.into(), status: None, request_id: None }
    }

    /// An answer that is not what Stripe sends (a page that is not a list).
    pub fn malformed(message: impl Into<String>) -> ApiError {
        ApiError::network(format!("the answer is not a Stripe list: {}", message.into()))
    }

    /// The HTTP status Stripe refused the request with.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether asking again later may succeed: no answer, or Stripe's
    /// 409 (lock contention), 429 and 5xx, or a failure beside the call.
    pub fn retryable(&self) -> bool {
        match self {
            ApiError::Refused { status, .. } => should_retry(Some(*status), None),
            ApiError::Unreachable { .. } | ApiError::Local(_) => true,
            ApiError::NotConfigured(_) | ApiError::NoUser(_) | ApiError::InvalidArgument(_) => {
                false
            }
        }
    }

    /// The text of the message (where secrets are masked).
    pub fn message_mut(&mut self) -> &mut String {
        match self {
            ApiError::Refused { message, .. } | ApiError::Unreachable { message, .. } => message,
            ApiError::NotConfigured(m)
            | ApiError::NoUser(m)
            | ApiError::InvalidArgument(m)
            | ApiError::Local(m) => m,
        }
    }

    /// One line: `stripe API error 404 invalid_request_error (resource_missing): ... [request req_1]`.
    pub fn describe(&self) -> String {
        match self {
            ApiError::Refused { status, error_type, code, message, request_id } => {
                let mut s = format!("stripe API error {status}");
                if let Some(t) = error_type {
                    s.push(' ');
                    s.push_str(t);
                }
                if let Some(c) = code {
                    s.push_str(&format!(" ({c})"));
                }
                s.push_str(": ");
                s.push_str(message);
                with_request(s, request_id)
            }
            ApiError::Unreachable { message, request_id, .. } => {
                with_request(format!("stripe API unreachable: {message}"), request_id)
            }
            ApiError::NotConfigured(m)
            | ApiError::NoUser(m)
            | ApiError::InvalidArgument(m)
            | ApiError::Local(m) => m.clone(),
        }
    }
}

fn with_request(mut s: String, request_id: &Option<String>) -> String {
    if let Some(r) = request_id {
        s.push_str(&format!(" [request {r}]"));
    }
    s
}

/// Replaces every occurrence of each secret (of 8 characters or more) in `text`
/// with a masked form that keeps only its prefix, e.g. `sk_test_***`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        let prefix: String = secret.split('_').take(2).collect::<Vec<_>>().join("_");
        let mask = format!("{}_***", prefix.chars().take(8).collect::<String>());
        out = out.replace(secret, &mask);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classification() {
        assert!(should_retry(None, None));
        assert!(should_retry(Some(429), None));
        assert!(should_retry(Some(500), None));
        assert!(should_retry(Some(503), None));
        assert!(should_retry(Some(409), None));
        assert!(!should_retry(Some(400), None));
        assert!(!should_retry(Some(401), None));
        assert!(!should_retry(Some(404), None));
        assert!(should_retry(Some(400), Some("true")));
        assert!(!should_retry(Some(503), Some("false")));
        assert!(should_retry(Some(503), Some("maybe")));
    }

    #[test]
    fn stripe_errors_are_described_with_their_request_id() {
        let body = r#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such customer: 'cus_x'","param":"id"}}"#;
        let e = ApiError::from_response(404, body, Some("req_123"));
        assert_eq!(
            e.describe(),
            "stripe API error 404 invalid_request_error (resource_missing): No such customer: 'cus_x' [request req_123]"
        );
        assert_eq!(e.status(), Some(404));
        assert!(!e.retryable());
        let e = ApiError::from_response(502, "<html>bad gateway</html>", None);
        assert_eq!(e.describe(), "stripe API error 502: HTTP 502 without a Stripe error body");
        assert!(e.retryable());
        assert_eq!(
            ApiError::network("connection refused").describe(),
            "stripe API unreachable: connection refused"
        );
        assert_eq!(ApiError::network("timeout").status(), None);
        assert!(ApiError::network("timeout").retryable());
        assert!(!ApiError::NoUser("no row".into()).retryable());
        assert_eq!(
            ApiError::NoUser("no row with id \"7\"".into()).describe(),
            "no row with id \"7\""
        );
    }

    #[test]
    fn keys_are_masked() {
        let key = "sk_test_51Habcdefghijklmnop";
        let text = format!("Invalid API Key provided: {key} (and again {key})");
        let r = redact(&text, &[key, "short"]);
        assert!(!r.contains(key));
        assert_eq!(r, "Invalid API Key provided: sk_test_*** (and again sk_test_***)");
        assert_eq!(redact("rk_live_abcdefghijk", &["rk_live_abcdefghijk"]), "rk_live_***");
    }
}
