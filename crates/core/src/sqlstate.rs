//! Every error the extension reports, mapped to its SQLSTATE (and, for ingest,
//! the hint saying what to do) in this one place. The README's tables of
//! SQLSTATEs are checked against it by the tests below.
//!
//! Style, PostgreSQL's: a message is lower-case with no trailing period; a
//! hint is a full sentence.

use crate::Error;
use crate::http::ApiError;

pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
pub const INVALID_JSON_TEXT: &str = "22032";
pub const INVALID_PARAMETER_VALUE: &str = "22023";
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
pub const CONNECTION_FAILURE: &str = "08006";
pub const NO_DATA_FOUND: &str = "P0002";
pub const EXTERNAL_ROUTINE_EXCEPTION: &str = "38000";

/// The SQLSTATE of an ingest failure (README, "Errors of ingest_event").
pub fn of_ingest(e: &Error) -> &'static str {
    match e {
        Error::NoSecret => OBJECT_NOT_IN_PREREQUISITE_STATE,
        Error::MissingHeader | Error::GarbledHeader(_) => INVALID_TEXT_REPRESENTATION,
        Error::NoMatchingSignature => INVALID_AUTHORIZATION_SPECIFICATION,
        Error::StaleTimestamp { .. } => DATETIME_FIELD_OVERFLOW,
        Error::NotJson(_) => INVALID_JSON_TEXT,
        Error::NotAnEvent(_) => INVALID_PARAMETER_VALUE,
        Error::PayloadTooLarge { .. } => PROGRAM_LIMIT_EXCEEDED,
    }
}

/// What to do about an ingest failure.
pub fn ingest_hint(e: &Error) -> &'static str {
    match e {
        Error::NoSecret => {
            "Set stripe_sync.webhook_secret to the endpoint's signing secret (whsec_...) in postgresql.conf or with ALTER SYSTEM, then reload."
        }
        Error::MissingHeader | Error::GarbledHeader(_) => {
            "Pass the Stripe-Signature header of the request unchanged as the second argument."
        }
        Error::NoMatchingSignature => {
            "Pass the raw request body unchanged, and check that stripe_sync.webhook_secret is this endpoint's secret."
        }
        Error::StaleTimestamp { .. } => {
            "Check the database server's clock; Stripe retries a delivery with a fresh signature."
        }
        Error::NotJson(_) | Error::NotAnEvent(_) => {
            "Pass the raw body of a Stripe webhook request."
        }
        Error::PayloadTooLarge { .. } => {
            "Raise stripe_sync.max_payload_bytes if such events are expected."
        }
    }
}

/// The SQLSTATE of an API failure (README, "Errors of the API-facing functions").
pub fn of_api(e: &ApiError) -> &'static str {
    match e {
        ApiError::NotConfigured(_) => OBJECT_NOT_IN_PREREQUISITE_STATE,
        ApiError::NoUser(_) => NO_DATA_FOUND,
        ApiError::InvalidArgument(_) => INVALID_PARAMETER_VALUE,
        ApiError::Unreachable { .. } => CONNECTION_FAILURE,
        ApiError::Local(_) => EXTERNAL_ROUTINE_EXCEPTION,
        ApiError::Refused { status, .. } => match status {
            401 => INVALID_AUTHORIZATION_SPECIFICATION,
            403 => INSUFFICIENT_PRIVILEGE,
            404 => NO_DATA_FOUND,
            400 | 402 => INVALID_PARAMETER_VALUE,
            _ => EXTERNAL_ROUTINE_EXCEPTION,
        },
    }
}

/// Whether a job of `backfill('all')` or `verify('all')` that failed with
/// `code` met an object type this server does not list (404): skipped.
pub fn not_listed_here(code: &str) -> bool {
    code == NO_DATA_FOUND
}

/// Whether the listing of connected accounts failed because the key is not a
/// Connect platform's (403, or a 400 for the request): skipped by `backfill('all')`.
pub fn not_a_platform(code: &str) -> bool {
    code == INSUFFICIENT_PRIVILEGE || code == INVALID_PARAMETER_VALUE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readme() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
            .expect("README.md")
    }

    /// The rows `| \`code\` | condition | when |` of the table under `heading`.
    fn table(readme: &str, heading: &str) -> Vec<(String, String)> {
        let section = readme.split(heading).nth(1).expect("the section");
        section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((code.to_owned(), cells.get(3)?.to_string()))
            })
            .collect()
    }

    fn ingest_samples() -> Vec<Error> {
        vec![
            Error::NoSecret,
            Error::MissingHeader,
            Error::GarbledHeader("no t="),
            Error::NoMatchingSignature,
            Error::StaleTimestamp { age_seconds: 400, tolerance_seconds: 300 },
            Error::NotJson("eof".into()),
            Error::NotAnEvent("no id"),
            Error::PayloadTooLarge { size: 2, max: 1 },
        ]
    }

    #[test]
    fn the_readme_lists_every_ingest_sqlstate_and_no_other() {
        let rows = table(&readme(), "## Errors of `ingest_event`");
        let mut documented: Vec<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
        let mut raised: Vec<&str> = ingest_samples().iter().map(of_ingest).collect();
        documented.sort_unstable();
        raised.sort_unstable();
        raised.dedup();
        assert_eq!(documented, raised);
    }

    #[test]
    fn the_readme_lists_every_api_sqlstate_and_no_other() {
        let rows = table(&readme(), "## Errors of the API-facing functions");
        let refused = |status| ApiError::from_response(status, "{}", None);
        let samples = [
            ApiError::NotConfigured("no key".into()),
            ApiError::NoUser("no row".into()),
            ApiError::InvalidArgument("bad".into()),
            ApiError::network("refused"),
            ApiError::Local("write-back failed".into()),
            refused(400),
            refused(401),
            refused(402),
            refused(403),
            refused(404),
            refused(409),
            refused(429),
            refused(500),
        ];
        let mut documented: Vec<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
        let mut raised: Vec<&str> = samples.iter().map(of_api).collect();
        documented.sort_unstable();
        raised.sort_unstable();
        raised.dedup();
        assert_eq!(documented, raised);
        // Each status is named in its row.
        for status in [400, 401, 402, 403, 404, 429] {
            let code = of_api(&refused(status));
            let (_, when) = rows.iter().find(|(c, _)| c == code).unwrap();
            assert!(when.contains(&status.to_string()), "{status} in the row of {code}: {when}");
        }
    }

    #[test]
    fn hints_are_sentences_and_messages_are_not() {
        for e in ingest_samples() {
            let hint = ingest_hint(&e);
            assert!(hint.starts_with(|c: char| c.is_ascii_uppercase()), "{hint}");
            assert!(hint.ends_with('.'), "{hint}");
            let message = e.to_string();
            assert!(message.starts_with(|c: char| c.is_ascii_lowercase()), "{message}");
            assert!(!message.ends_with('.'), "{message}");
        }
    }

    #[test]
    fn skipped_types_are_told_by_their_code() {
        let refused = |status| of_api(&ApiError::from_response(status, "{}", None));
        assert!(not_listed_here(refused(404)));
        assert!(!not_listed_here(refused(401)));
        assert!(not_a_platform(refused(403)) && not_a_platform(refused(400)));
        assert!(!not_a_platform(refused(401)) && !not_a_platform(refused(500)));
    }
}
