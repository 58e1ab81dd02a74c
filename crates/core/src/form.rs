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
}
