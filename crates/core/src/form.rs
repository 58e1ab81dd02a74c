//! Stripe's form encoding of request parameters: nested objects and arrays
//! become bracketed keys (`metadata[user_id]=42`, `items[0][price]=price_1`).

use serde_json::Value;

/// Flattens a JSON object of parameters into ordered `(key, value)` pairs.
/// Nulls are dropped (Stripe unsets a field with an empty string, not null).
pub fn encode(params: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Value::Object(map) = params {
        for (k, v) in map {
            push(&mut out, k.clone(), v);
        }
    }
    out
}

fn push(out: &mut Vec<(String, String)>, key: String, value: &Value) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push((key, b.to_string())),
        Value::Number(n) => out.push((key, n.to_string())),
        Value::String(s) => out.push((key, s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                push(out, format!("{key}[{i}]"), item);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                push(out, format!("{key}[{k}]"), v);
            }
        }
    }
}

/// Percent-encodes pairs as an `application/x-www-form-urlencoded` string
/// (also used for query strings).
pub fn to_query(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", escape(k), escape(v))).collect::<Vec<_>>().join("&")
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Splits a path with a query (`/v2/core/events?page=a%3Db`, Stripe's
/// `next_page_url`) into the path and its decoded `(key, value)` pairs, for a
/// request that encodes them again.
pub fn split_path(url: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let pairs = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (unescape(k), unescape(v))
        })
        .collect();
    (path.to_owned(), pairs)
}

/// Percent-decoding (and `+` as a space); a malformed escape stays as it is.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_keys_follow_stripe_conventions() {
        let pairs = encode(&json!({
            "email": "a@b.c",
            "metadata": {"user_id": "42", "table": "public.users"},
            "items": [{"price": "price_1", "quantity": 2}, {"price": "price_2"}],
            "expand": ["data.customer"],
            "description": null,
            "livemode": false
        }));
        let expected = [
            ("description", None),
            ("email", Some("a@b.c")),
            ("expand[0]", Some("data.customer")),
            ("items[0][price]", Some("price_1")),
            ("items[0][quantity]", Some("2")),
            ("items[1][price]", Some("price_2")),
            ("livemode", Some("false")),
            ("metadata[table]", Some("public.users")),
            ("metadata[user_id]", Some("42")),
        ];
        let want: Vec<(String, String)> = expected
            .iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))
            .collect();
        assert_eq!(pairs, want);
    }

    #[test]
    fn query_strings_are_percent_encoded() {
        let q = to_query(&[
            ("metadata[user id]".into(), "a&b=c".into()),
            ("email".into(), "ä+x@y.z".into()),
        ]);
        assert_eq!(q, "metadata%5Buser%20id%5D=a%26b%3Dc&email=%C3%A4%2Bx%40y.z");
    }

    #[test]
    fn non_objects_encode_to_nothing() {
        assert!(encode(&json!([1, 2])).is_empty());
        assert!(encode(&json!(null)).is_empty());
    }

    #[test]
    fn a_next_page_url_splits_into_path_and_decoded_query() {
        let (path, q) = split_path(
            "/v2/core/events?page=a%3Db%2Bc&created%5Bgte%5D=2026-12-01T00%3A00%3A00Z&x=1+2",
        );
        assert_eq!(path, "/v2/core/events");
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            q,
            vec![("page", "a=b+c"), ("created[gte]", "2026-12-01T00:00:00Z"), ("x", "1 2")]
        );
        assert_eq!(split_path("/v2/core/events"), ("/v2/core/events".into(), vec![]));
        // A malformed escape stays; the query round-trips through to_query.
        let (_, q) = split_path("/p?a=%zz%4");
        assert_eq!(q, vec![("a".into(), "%zz%4".into())]);
        let (_, back) =
            split_path(&format!("/p?{}", to_query(&[("k[1]".into(), "a b&c=é".into())])));
        assert_eq!(back, vec![("k[1]".into(), "a b&c=é".into())]);
    }
}
