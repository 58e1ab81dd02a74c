//! Stripe webhook signature verification: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=..]`,
//! HMAC-SHA256 keyed with the endpoint secret over `"{t}.{payload}"`.
//!
//! Order of checks follows Stripe's libraries: the header must parse, one `v1`
//! must match under one of the secrets (constant-time), and only then is the
//! timestamp's distance from now compared with the tolerance (in both
//! directions, so a clock running ahead is caught too).

use crate::Error;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A parsed `Stripe-Signature` header. `v0` and unknown schemes are dropped;
/// `v1` values that are not 64 hex digits are dropped too (they can match nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    pub v1: Vec<[u8; 32]>,
}

/// Parses the header value. Elements are `key=value` separated by commas.
pub fn parse_header(header: &str) -> Result<SignatureHeader, Error> {
    let header = header.trim();
    if header.is_empty() {
        return Err(Error::MissingHeader);
    }
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for element in header.split(',') {
        let (key, value) =
            element.trim().split_once('=').ok_or(Error::GarbledHeader("an element has no '='"))?;
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(Error::GarbledHeader("more than one timestamp"));
                }
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::GarbledHeader("the timestamp is not a number"));
                }
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| Error::GarbledHeader("the timestamp is out of range"))?,
                );
            }
            "v1" => v1.extend(decode_hex32(value)),
            _ => {} // v0 (test-mode signature with Stripe's own key) and future schemes
        }
    }
    let timestamp = timestamp.ok_or(Error::GarbledHeader("no timestamp"))?;
    Ok(SignatureHeader { timestamp, v1 })
}

/// Verifies `payload` against `header` with any of `secrets` at time `now` (Unix seconds).
pub fn verify(
    payload: &[u8],
    header: &str,
    secrets: &[&str],
    tolerance_seconds: i64,
    now: i64,
) -> Result<(), Error> {
    if secrets.is_empty() {
        return Err(Error::NoSecret);
    }
    let parsed = parse_header(header)?;
    let t = parsed.timestamp.to_string();
    let matched = secrets.iter().any(|secret| {
        let mut mac =
            HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(payload);
        // verify_slice compares in constant time; try every v1 so timing says nothing about which matched
        parsed.v1.iter().fold(false, |found, sig| mac.clone().verify_slice(sig).is_ok() | found)
    });
    if !matched {
        return Err(Error::NoMatchingSignature);
    }
    let age = now.saturating_sub(parsed.timestamp);
    if age.unsigned_abs() > tolerance_seconds.unsigned_abs() {
        return Err(Error::StaleTimestamp { age_seconds: age, tolerance_seconds });
    }
    Ok(())
}

/// Splits the comma-separated secret list of `stripe_sync.webhook_secret`.
pub fn split_secrets(list: &str) -> Vec<&str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// Computes the `v1` signature (lowercase hex). Used by tests and tools that
/// sign their own deliveries.
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/stripe/signature/");
    const PAYLOAD: &str = r#"{"id":"evt_test_webhook","object":"event"}"#;
    const SINGLE: &str =
        "t=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";
    const NOW: i64 = 1_700_000_000;

    fn shared_file(name: &str) -> Option<String> {
        std::fs::read_to_string(format!("{SHARED}{name}")).ok()
    }

    #[test]
    fn official_dotnet_vector_verifies_within_tolerance_only() {
        // Vector from stripe-dotnet EventUtilityTest.cs (see shared/stripe/SOURCES.md).
        let Some(payload) = shared_file("event_test_signature.json") else {
            panic!("shared/stripe/signature/event_test_signature.json is missing next to the repo");
        };
        let header = "t=1533204620,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";
        for now in [1533204620, 1533204720, 1533204920] {
            assert_eq!(verify(payload.as_bytes(), header, &["webhook_secret"], 300, now), Ok(()));
        }
        assert!(matches!(
            verify(payload.as_bytes(), header, &["webhook_secret"], 300, 1533205020),
            Err(Error::StaleTimestamp { age_seconds: 400, tolerance_seconds: 300 })
        ));
    }

    #[test]
    fn every_vector_in_the_shared_file_is_checked() {
        let Some(text) = shared_file("vectors.json") else {
            panic!("shared/stripe/signature/vectors.json is missing next to the repo");
        };
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut checked = 0;
        for v in doc["vectors"].as_array().unwrap() {
            let (Some(payload), Some(t)) = (v["payload"].as_str(), v["timestamp"].as_i64()) else {
                continue;
            };
            if let (Some(secret), Some(expected)) =
                (v["secret"].as_str(), v["expected_v1"].as_str())
            {
                assert_eq!(sign(payload.as_bytes(), secret, t), expected, "{}", v["name"]);
                checked += 1;
            }
            if let (Some(secrets), Some(header)) = (v["secrets"].as_array(), v["header"].as_str()) {
                for s in secrets {
                    assert_eq!(
                        verify(payload.as_bytes(), header, &[s.as_str().unwrap()], 300, t),
                        Ok(())
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 4);
    }

    #[test]
    fn single_v1_verifies() {
        assert_eq!(verify(PAYLOAD.as_bytes(), SINGLE, &["whsec_test_secret"], 300, NOW), Ok(()));
    }

    #[test]
    fn a_changed_body_is_rejected() {
        let body = format!("{PAYLOAD}\n");
        assert_eq!(
            verify(body.as_bytes(), SINGLE, &["whsec_test_secret"], 300, NOW),
            Err(Error::NoMatchingSignature)
        );
    }

    #[test]
    fn wrong_secret_is_rejected_and_any_rotated_secret_is_accepted() {
        assert_eq!(
            verify(PAYLOAD.as_bytes(), SINGLE, &["whsec_other"], 300, NOW),
            Err(Error::NoMatchingSignature)
        );
        assert_eq!(
            verify(PAYLOAD.as_bytes(), SINGLE, &["whsec_other", "whsec_test_secret"], 300, NOW),
            Ok(())
        );
    }

    #[test]
    fn no_secret_is_its_own_error() {
        assert_eq!(verify(PAYLOAD.as_bytes(), SINGLE, &[], 300, NOW), Err(Error::NoSecret));
        assert!(split_secrets(" , ").is_empty());
        assert_eq!(split_secrets("whsec_a, whsec_b,"), vec!["whsec_a", "whsec_b"]);
    }

    #[test]
    fn timestamp_in_the_future_is_rejected_too() {
        let t = NOW + 301;
        let header = format!("t={t},v1={}", sign(PAYLOAD.as_bytes(), "s", t));
        assert!(matches!(
            verify(PAYLOAD.as_bytes(), &header, &["s"], 300, NOW),
            Err(Error::StaleTimestamp { age_seconds: -301, .. })
        ));
        let t = NOW + 300;
        let header = format!("t={t},v1={}", sign(PAYLOAD.as_bytes(), "s", t));
        assert_eq!(verify(PAYLOAD.as_bytes(), &header, &["s"], 300, NOW), Ok(()));
    }

    #[test]
    fn stale_timestamp_is_only_reported_for_a_valid_signature() {
        // A forger must not learn anything from the timestamp check.
        let header = "t=1,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";
        assert_eq!(
            verify(PAYLOAD.as_bytes(), header, &["whsec_test_secret"], 300, NOW),
            Err(Error::NoMatchingSignature)
        );
    }

    #[test]
    fn header_shapes_from_the_official_tests() {
        let v = |h: &str| verify(PAYLOAD.as_bytes(), h, &["whsec_test_secret"], 300, NOW);
        assert_eq!(v(""), Err(Error::MissingHeader));
        assert_eq!(v("   "), Err(Error::MissingHeader));
        assert_eq!(v("bad_header"), Err(Error::GarbledHeader("an element has no '='")));
        assert_eq!(v("t="), Err(Error::GarbledHeader("the timestamp is not a number")));
        assert_eq!(v("v1,t=1"), Err(Error::GarbledHeader("an element has no '='")));
        assert_eq!(v("v1=abc"), Err(Error::GarbledHeader("no timestamp")));
        assert_eq!(v("t=1,t=2,v1=ab"), Err(Error::GarbledHeader("more than one timestamp")));
        assert_eq!(v("t=-5,v1=ab"), Err(Error::GarbledHeader("the timestamp is not a number")));
        assert_eq!(
            v("t=99999999999999999999,v1=ab"),
            Err(Error::GarbledHeader("the timestamp is out of range"))
        );
        assert_eq!(
            v("t=1700000000,v0=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"),
            Err(Error::NoMatchingSignature)
        );
        assert_eq!(
            v(
                "t=1700000000,v1=bad_signature,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
            ),
            Ok(())
        );
        assert_eq!(
            v(
                "t=1700000000, v1=D95C6B7477FBD7E9F90B1B0EF5F9C7AC25ABCA5382460E0D988C2B2A5B71B990, scheme9=x"
            ),
            Ok(())
        );
    }
}
