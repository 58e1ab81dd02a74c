//! Reading a Stripe event envelope: the few fields the queue stores as columns
//! (the whole event is kept as jsonb next to them).

use crate::Error;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// What ingest needs to know about an event before storing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub id: String,
    pub event_type: String,
    /// Unix seconds.
    pub created: i64,
    /// Connected account (`account`), for Stripe Connect events.
    pub account: Option<String>,
    pub api_version: Option<String>,
    /// `data.object.object`, e.g. `customer`.
    pub object_type: Option<String>,
    /// `data.object.id` (a customer's entitlement summary, which has no id:
    /// its `customer`).
    pub object_id: Option<String>,
    /// A thin event (`v2.core.event`, Stripe's event destinations): it
    /// carries no object, only `related_object`, whose type and id are
    /// `object_type` and `object_id`; the object is read from the API.
    pub thin: bool,
}

/// The `object` of a thin event.
pub const THIN: &str = "v2.core.event";

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    object: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    created: Option<&'a RawValue>,
    #[serde(borrow)]
    account: Option<Cow<'a, str>>,
    /// A thin event's connected account.
    #[serde(borrow)]
    context: Option<Cow<'a, str>>,
    #[serde(borrow)]
    related_object: Option<Related<'a>>,
    #[serde(borrow)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    object: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Related<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    object_type: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ObjectHead<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    object: Option<Cow<'a, str>>,
    /// Read only where it is the object's key; elsewhere it may be expanded.
    #[serde(borrow)]
    customer: Option<&'a RawValue>,
}

/// The last second of year 9999: a `created` beyond it is no Stripe event's
/// (and PostgreSQL's timestamps end in 294276).
const MAX_CREATED: i64 = 253_402_300_799;

/// Checks the size, then that `payload` is JSON shaped like a Stripe event.
/// Only the envelope and the object's `id`/`object` are decoded; the object's
/// other fields are skipped without building a tree.
pub fn parse_event(payload: &str, max_bytes: usize) -> Result<EventMeta, Error> {
    check_size(payload, max_bytes)?;
    let env: Envelope = match serde_json::from_str(payload) {
        Ok(env) => env,
        // A JSON value of the wrong shape (a string where the envelope has an
        // object, say) is valid JSON but not an event.
        // A field of the wrong type stops serde before the rest is read: a
        // body that is not JSON at all is told as such all the same.
        Err(e) if e.is_data() => {
            if let Err(syntax) = serde_json::from_str::<serde::de::IgnoredAny>(payload) {
                return Err(Error::NotJson(describe(&syntax)));
            }
            return Err(Error::NotAnEvent("it is not a JSON object with event fields"));
        }
        Err(e) => return Err(Error::NotJson(describe(&e))),
    };
    let id = env.id.ok_or(Error::NotAnEvent("no \"id\""))?;
    if !id.starts_with("evt_") || id.len() > 255 {
        return Err(Error::NotAnEvent("\"id\" does not start with \"evt_\""));
    }
    let thin = env.object.as_deref() == Some(THIN);
    if env.object.as_deref().is_some_and(|o| o != "event" && o != THIN) {
        return Err(Error::NotAnEvent("\"object\" is not \"event\" or \"v2.core.event\""));
    }
    let event_type =
        env.event_type.filter(|t| !t.is_empty()).ok_or(Error::NotAnEvent("no \"type\""))?;
    let created = match env.created {
        Some(raw) if thin => serde_json::from_str::<&str>(raw.get())
            .ok()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp())
            .ok_or(Error::NotAnEvent("\"created\" is not an RFC 3339 time"))?,
        Some(raw) => serde_json::from_str::<i64>(raw.get())
            .map_err(|_| Error::NotAnEvent("no integer \"created\""))?,
        None if thin => return Err(Error::NotAnEvent("no \"created\"")),
        None => return Err(Error::NotAnEvent("no integer \"created\"")),
    };
    if !(0..=MAX_CREATED).contains(&created) {
        return Err(Error::NotAnEvent("\"created\" is not a Unix time between 1970 and 9999"));
    }
    let (object_type, object_id) = if thin {
        // No object: what it points at, if anything (a ping points at nothing).
        let related = env.related_object;
        let (t, id) = related.map(|r| (r.object_type, r.id)).unwrap_or((None, None));
        (t.map(Cow::into_owned), id.map(Cow::into_owned))
    } else {
        let raw = env.data.and_then(|d| d.object).ok_or(Error::NotAnEvent("no \"data.object\""))?;
        let head: ObjectHead = serde_json::from_str(raw.get())
            .map_err(|_| Error::NotAnEvent("\"data.object\" is not an object"))?;
        let key = head.object.as_deref().and_then(crate::mapping::spec_for).map(|s| s.key);
        let id = match key {
            Some("customer") => {
                head.customer.and_then(|c| serde_json::from_str::<String>(c.get()).ok())
            }
            _ => head.id.map(Cow::into_owned),
        };
        (head.object.map(Cow::into_owned), id)
    };
    Ok(EventMeta {
        id: id.into_owned(),
        event_type: event_type.into_owned(),
        created,
        account: env.account.or(env.context).map(Cow::into_owned),
        api_version: env.api_version.map(Cow::into_owned),
        object_type,
        object_id,
        thin,
    })
}

/// The size check alone, so callers can run it before anything else.
pub fn check_size(payload: &str, max_bytes: usize) -> Result<(), Error> {
    if payload.len() > max_bytes {
        return Err(Error::PayloadTooLarge { size: payload.len(), max: max_bytes });
    }
    Ok(())
}

/// serde_json's message plus position; it never quotes the input.
fn describe(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        _ => "syntax error",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_created_beyond_any_date_is_not_an_event() {
        for created in ["-1", "253402300800", "99999999999999999"] {
            let body = format!(
                r#"{{"id":"evt_1","type":"a.b","created":{created},"data":{{"object":{{}}}}}}"#
            );
            assert_eq!(
                parse_event(&body, 1 << 20),
                Err(Error::NotAnEvent("\"created\" is not a Unix time between 1970 and 9999")),
                "{created}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_not_json_whatever_comes_first() {
        let body = r#"{"id":5,"type":"a.b","created":1,"data":{"object":{}} trailing"#;
        assert!(matches!(parse_event(body, 1 << 20), Err(Error::NotJson(_))));
        let body = r#"{"id":"evt_1","created":"soon","data":{"object":{"#;
        assert!(matches!(parse_event(body, 1 << 20), Err(Error::NotJson(_))));
    }

    use super::*;

    const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/stripe/events/");

    fn event(body: &str) -> Result<EventMeta, Error> {
        parse_event(body, 1 << 20)
    }

    #[test]
    fn every_shared_event_fixture_parses_with_its_object() {
        let mut n = 0;
        for entry in std::fs::read_dir(EVENTS).expect("shared/stripe/events next to the repo") {
            let path = entry.unwrap().path();
            let body = std::fs::read_to_string(&path).unwrap();
            let meta = event(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(name.starts_with(&meta.event_type), "{name} has type {}", meta.event_type);
            assert!(meta.object_type.is_some() && meta.object_id.is_some(), "{name}");
            n += 1;
        }
        assert_eq!(n, 40);
    }

    #[test]
    fn customer_created_fields() {
        let m = event(
            r#"{"id":"evt_1","object":"event","type":"customer.created","created":1700000000,
                "account":"acct_9","api_version":"2026-07-29.dahlia",
                "data":{"object":{"id":"cus_1","object":"customer","email":"a@b.c"}}}"#,
        )
        .unwrap();
        assert_eq!(m.id, "evt_1");
        assert_eq!(m.event_type, "customer.created");
        assert_eq!(m.created, 1_700_000_000);
        assert_eq!(m.account.as_deref(), Some("acct_9"));
        assert_eq!(m.api_version.as_deref(), Some("2026-07-29.dahlia"));
        assert_eq!(m.object_type.as_deref(), Some("customer"));
        assert_eq!(m.object_id.as_deref(), Some("cus_1"));
    }

    #[test]
    fn not_json_is_reported_without_quoting_the_input() {
        let err = event("{\"id\": \"evt_secretish\", ").unwrap_err();
        assert!(matches!(err, Error::NotJson(_)));
        assert!(!err.to_string().contains("secretish"));
        assert!(matches!(event("not json at all"), Err(Error::NotJson(_))));
        assert!(matches!(event(""), Err(Error::NotJson(_))));
    }

    #[test]
    fn json_that_is_not_an_event_names_what_is_missing() {
        let cases = [
            ("[1,2]", "it is not a JSON object with event fields"),
            ("\"evt_1\"", "it is not a JSON object with event fields"),
            ("{}", "no \"id\""),
            (
                r#"{"id":"cus_1","type":"x","created":1,"data":{"object":{}}}"#,
                "\"id\" does not start with \"evt_\"",
            ),
            (r#"{"id":"evt_1","created":1,"data":{"object":{}}}"#, "no \"type\""),
            (r#"{"id":"evt_1","type":"","created":1,"data":{"object":{}}}"#, "no \"type\""),
            (r#"{"id":"evt_1","type":"a.b","data":{"object":{}}}"#, "no integer \"created\""),
            (r#"{"id":"evt_1","type":"a.b","created":1}"#, "no \"data.object\""),
            (r#"{"id":"evt_1","type":"a.b","created":1,"data":{}}"#, "no \"data.object\""),
            (
                r#"{"id":"evt_1","type":"a.b","created":1,"data":{"object":5}}"#,
                "\"data.object\" is not an object",
            ),
            (
                r#"{"id":"evt_1","object":"customer","type":"a.b","created":1,"data":{"object":{}}}"#,
                "\"object\" is not \"event\" or \"v2.core.event\"",
            ),
            (
                r#"{"id":5,"type":"a.b","created":1,"data":{"object":{}}}"#,
                "it is not a JSON object with event fields",
            ),
        ];
        for (body, why) in cases {
            assert_eq!(event(body), Err(Error::NotAnEvent(why)), "{body}");
        }
    }

    #[test]
    fn thin_events_point_at_their_object() {
        let m = event(
            r#"{"id":"evt_test_65R9","object":"v2.core.event","type":"v1.billing.meter.error_report_triggered",
                "livemode":false,"created":"2024-09-17T06:20:52.246Z","context":"acct_7",
                "related_object":{"id":"mtr_test_61R9","type":"billing.meter","url":"/v1/billing/meters/mtr_test_61R9"}}"#,
        )
        .unwrap();
        assert!(m.thin);
        assert_eq!(m.created, 1_726_554_052);
        assert_eq!(m.account.as_deref(), Some("acct_7"));
        assert_eq!(m.object_type.as_deref(), Some("billing.meter"));
        assert_eq!(m.object_id.as_deref(), Some("mtr_test_61R9"));
        assert_eq!(m.api_version, None);
        let ping = event(r#"{"id":"evt_2","object":"v2.core.event","type":"v2.core.event_destination.ping","created":"2026-12-01T10:00:00+01:00"}"#).unwrap();
        assert_eq!((ping.object_type, ping.object_id, ping.created), (None, None, 1_796_115_600));
        for (body, why) in [
            (
                r#"{"id":"evt_3","object":"v2.core.event","type":"a","created":1700000000}"#,
                "\"created\" is not an RFC 3339 time",
            ),
            (
                r#"{"id":"evt_3","object":"v2.core.event","type":"a","created":"yesterday"}"#,
                "\"created\" is not an RFC 3339 time",
            ),
            (r#"{"id":"evt_3","object":"v2.core.event","type":"a"}"#, "no \"created\""),
            (
                r#"{"id":"evt_3","object":"v2.core.event","created":"2024-09-17T06:20:52Z"}"#,
                "no \"type\"",
            ),
            (
                r#"{"id":"x_3","object":"v2.core.event","type":"a","created":"2024-09-17T06:20:52Z"}"#,
                "\"id\" does not start with \"evt_\"",
            ),
        ] {
            assert_eq!(event(body), Err(Error::NotAnEvent(why)), "{body}");
        }
        // A snapshot event is never thin.
        assert!(
            !event(r#"{"id":"evt_4","type":"a.b","created":1,"data":{"object":{"id":"x_1"}}}"#)
                .unwrap()
                .thin
        );
    }

    #[test]
    fn an_entitlement_summary_is_keyed_by_its_customer() {
        let m = event(
            r#"{"id":"evt_5","object":"event","type":"entitlements.active_entitlement_summary.updated","created":1,
                "data":{"object":{"object":"entitlements.active_entitlement_summary","customer":"cus_9",
                "entitlements":{"object":"list","data":[],"has_more":false},"livemode":false}}}"#,
        )
        .unwrap();
        assert_eq!(m.object_type.as_deref(), Some("entitlements.active_entitlement_summary"));
        assert_eq!(m.object_id.as_deref(), Some("cus_9"));
        // Elsewhere an expanded customer is no obstacle.
        let m = event(r#"{"id":"evt_6","type":"charge.updated","created":1,"data":{"object":{"id":"ch_1","object":"charge","customer":{"id":"cus_1","object":"customer"}}}}"#).unwrap();
        assert_eq!(m.object_id.as_deref(), Some("ch_1"));
    }

    #[test]
    fn escaped_strings_are_read() {
        let m = event(r#"{"id":"evt_\u0031","type":"customer.updated","created":1,"data":{"object":{"id":"cus_\u0032","object":"customer"}}}"#).unwrap();
        assert_eq!((m.id.as_str(), m.object_id.as_deref()), ("evt_1", Some("cus_2")));
    }

    #[test]
    fn size_limit_is_checked_first() {
        assert_eq!(
            parse_event("x".repeat(11).as_str(), 10),
            Err(Error::PayloadTooLarge { size: 11, max: 10 })
        );
        assert_eq!(check_size("0123456789", 10), Ok(()));
    }
}
