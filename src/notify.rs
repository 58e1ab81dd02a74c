//! `NOTIFY stripe_sync` after each applied batch, sent inside the batch's
//! transaction so listeners hear only of committed changes. The payload is
//! JSON: `{"count": n, "events": [{"id", "type", "status"}, ...],
//! "truncated": bool}`, cut to stay under NOTIFY's 8000-byte limit.

use crate::queue::Applied;
use pgrx::prelude::*;

pub const CHANNEL: &str = "stripe_sync";
/// PostgreSQL's limit is 8000 bytes; leave room for the closing part.
const MAX_PAYLOAD: usize = 7900;

pub fn batch_applied(events: &[Applied]) {
    if events.is_empty() {
        return;
    }
    let payload = payload(events);
    Spi::run_with_args(
        "SELECT pg_catalog.pg_notify($1, $2)",
        &[CHANNEL.into(), payload.as_str().into()],
    )
    .expect("pg_notify");
}

fn payload(events: &[Applied]) -> String {
    let mut list = Vec::new();
    let mut size = 64;
    let mut truncated = false;
    for e in events {
        let item = serde_json::json!({"id": e.id, "type": e.event_type, "status": e.status});
        let len = item.to_string().len() + 1;
        if size + len > MAX_PAYLOAD {
            truncated = true;
            break;
        }
        size += len;
        list.push(item);
    }
    serde_json::json!({"count": events.len(), "events": list, "truncated": truncated}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(n: usize) -> Vec<Applied> {
        (0..n)
            .map(|i| Applied {
                id: format!("evt_{i:024}"),
                event_type: "customer.subscription.updated".into(),
                status: "processed".into(),
            })
            .collect()
    }

    #[test]
    fn small_batches_are_listed_whole() {
        let v: serde_json::Value = serde_json::from_str(&payload(&applied(3))).unwrap();
        assert_eq!(v["count"], 3);
        assert_eq!(v["events"].as_array().unwrap().len(), 3);
        assert_eq!(v["truncated"], false);
        assert_eq!(v["events"][1]["type"], "customer.subscription.updated");
    }

    #[test]
    fn large_batches_fit_under_the_notify_limit() {
        let p = payload(&applied(5000));
        assert!(p.len() < 8000, "{}", p.len());
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["count"], 5000);
        assert_eq!(v["truncated"], true);
        assert!(v["events"].as_array().unwrap().len() > 50);
    }
}
