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

/// A Stripe API error as the SQL error reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status; None when no answer came (network error, timeout).
    pub status: Option<u16>,
    pub error_type: Option<String>,
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
}

impl ApiError {
    /// Reads Stripe's `{"error": {"type", "code", "message"}}` body.
    pub fn from_response(status: u16, body: &str, request_id: Option<&str>) -> ApiError {
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        let err = parsed.as_ref().and_then(|v| v.get("error"));
        let field =
            |name: &str| err.and_then(|e| e.get(name)).and_then(Value::as_str).map(str::to_owned);
        ApiError {
            status: Some(status),
            error_type: field("type"),
            code: field("code"),
            message: field("message")
                .unwrap_or_else(|| format!("HTTP {status} without a Stripe error body")),
            request_id: request_id.map(str::to_owned),
        }
    }

    /// An error found before or beside any HTTP exchange (configuration, a
    /// missing user, a bad argument): `kind` names it, the message says it all.
    pub fn local(kind: &str, message: impl Into<String>) -> ApiError {
        ApiError { error_type: Some(kind.to_owned()), ..ApiError::network(message) }
    }

    pub fn network(message: impl Into<String>) -> ApiError {
        ApiError {
            status: None,
            error_type: None,
            code: None,
            message: message.into(),
            request_id: None,
        }
    }

    /// One line: `stripe API error 404 invalid_request_error (resource_missing): ... [request req_1]`.
    pub fn describe(&self) -> String {
        let mut s = match (self.status, &self.error_type) {
            (Some(code), _) => format!("stripe API error {code}"),
            (None, None) => "stripe API unreachable".to_owned(),
            // Not an HTTP failure (configuration, a missing user, ...): the message says it all.
            (None, Some(_)) => return self.message.clone(),
        };
        if let Some(t) = &self.error_type {
            s.push(' ');
            s.push_str(t);
        }
        if let Some(c) = &self.code {
            s.push_str(&format!(" ({c})"));
        }
        s.push_str(": ");
        s.push_str(&self.message);
        if let Some(r) = &self.request_id {
            s.push_str(&format!(" [request {r}]"));
        }
        s
    }
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
        let e = ApiError::from_response(502, "<html>bad gateway</html>", None);
        assert_eq!(e.describe(), "stripe API error 502: HTTP 502 without a Stripe error body");
        assert_eq!(
            ApiError::network("connection refused").describe(),
            "stripe API unreachable: connection refused"
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
