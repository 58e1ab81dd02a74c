//! The text of Slack alerts: one concise, actionable message per event (who,
//! how much, what happened, the object's page in the Stripe dashboard), one
//! for an event that could not be applied, and a digest for a burst. Pure:
//! the worker gathers the facts (alerts.rs) and posts the text (slack.rs).

use crate::money;
use serde_json::Value;
use std::collections::BTreeMap;

/// What the database knows about the event an alert is for.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    /// `data.object` of the event (Null when the event is gone).
    pub object: &'a Value,
    pub livemode: bool,
    /// Connected account (Stripe Connect), if any.
    pub account: Option<&'a str>,
    /// The customer the object belongs to, as stripe_sync.customers has it.
    pub customer_id: Option<&'a str>,
    pub customer_email: Option<&'a str>,
    pub customer_name: Option<&'a str>,
    /// The amount and currency of the charge the object refers to (early
    /// fraud warnings carry only the charge id).
    pub charge_amount: Option<(i64, &'a str)>,
    /// For a dead letter: how often the apply was tried, and its last error.
    pub attempts: i32,
    pub last_error: Option<&'a str>,
}

const DASHBOARD: &str = "https://dashboard.stripe.com/";
/// Longest error quoted in a dead-letter message.
const MAX_ERROR: usize = 300;
/// Examples linked from a digest.
const DIGEST_EXAMPLES: usize = 5;

/// The dashboard page of an object: `https://dashboard.stripe.com/[acct_/][test/]<path>`.
/// Objects without a page of their own link to the event.
pub fn dashboard_url(f: &Facts) -> String {
    let mut url = String::from(DASHBOARD);
    if let Some(a) = f.account {
        url.push_str(a);
        url.push('/');
    }
    if !f.livemode {
        url.push_str("test/");
    }
    let id = str_field(f.object, "id");
    let kind = str_field(f.object, "object");
    let path = match (kind, id) {
        (Some("customer"), Some(id)) => format!("customers/{id}"),
        (Some("invoice"), Some(id)) => format!("invoices/{id}"),
        (Some("subscription"), Some(id)) => format!("subscriptions/{id}"),
        (Some("charge" | "payment_intent"), Some(id)) => format!("payments/{id}"),
        (Some("dispute"), Some(id)) => format!("disputes/{id}"),
        (Some("refund"), Some(id)) => format!("refunds/{id}"),
        (Some("product"), Some(id)) => format!("products/{id}"),
        (Some("price"), Some(id)) => format!("prices/{id}"),
        (Some("coupon"), Some(id)) => format!("coupons/{id}"),
        (Some("subscription_schedule"), Some(id)) => format!("subscription_schedules/{id}"),
        (Some("radar.early_fraud_warning"), _) => match str_field(f.object, "charge") {
            Some(charge) => format!("payments/{charge}"),
            None => format!("events/{}", f.event_id),
        },
        _ => format!("events/{}", f.event_id),
    };
    url.push_str(&path);
    url
}

/// The amount an alert is about, with its currency, when the object has one.
pub fn amount(f: &Facts) -> Option<(i64, String)> {
    let o = f.object;
    let currency = || str_field(o, "currency").map(str::to_owned);
    match str_field(o, "object") {
        Some("invoice") => {
            Some((int_field(o, "amount_due").or_else(|| int_field(o, "total"))?, currency()?))
        }
        Some("subscription") => {
            let items = o.pointer("/items/data")?.as_array()?;
            let total: i64 = items
                .iter()
                .filter_map(|i| {
                    let price = i.get("price").or_else(|| i.get("plan"))?;
                    let unit =
                        int_field(price, "unit_amount").or_else(|| int_field(price, "amount"))?;
                    Some(unit * int_field(i, "quantity").unwrap_or(1))
                })
                .sum();
            Some((total, currency()?))
        }
        Some("radar.early_fraud_warning") => f.charge_amount.map(|(a, c)| (a, c.to_owned())),
        _ => Some((int_field(o, "amount")?, currency()?)),
    }
}

/// Who the object is about: "Name <email>", or whatever part is known.
fn who(f: &Facts) -> String {
    let o = f.object;
    let email = f.customer_email.or_else(|| str_field(o, "customer_email"));
    let name = f.customer_name.or_else(|| str_field(o, "customer_name"));
    match (name, email) {
        (Some(n), Some(e)) => format!("{n} <{e}>"),
        (None, Some(e)) => e.to_owned(),
        (Some(n), None) => n.to_owned(),
        (None, None) => match f.customer_id.or_else(|| str_field(o, "customer")) {
            Some(id) => format!("customer {id}"),
            None => "an unknown customer".to_owned(),
        },
    }
}

/// One message for one alerted event.
pub fn event_message(f: &Facts) -> String {
    let o = f.object;
    let money = amount(f).map(|(a, c)| money::display(a, &c));
    let amount_text = money.clone().unwrap_or_else(|| "an unknown amount".to_owned());
    let id = str_field(o, "id").unwrap_or("?");
    let (icon, headline, detail) = match f.event_type {
        "invoice.payment_failed" => {
            let attempt = int_field(o, "attempt_count").map(|n| format!(", attempt {n}"));
            let next = match int_field(o, "next_payment_attempt") {
                Some(t) => format!("; next attempt {}", utc(t)),
                None => "; no further attempt is scheduled".to_owned(),
            };
            let number = str_field(o, "number").unwrap_or(id);
            (
                ":warning:",
                "Payment failed",
                format!(
                    "{amount_text} from {} (invoice {number}{}{next})",
                    who(f),
                    attempt.unwrap_or_default()
                ),
            )
        }
        "charge.dispute.created" => {
            let reason = str_field(o, "reason").unwrap_or("unspecified");
            let due = o
                .pointer("/evidence_details/due_by")
                .and_then(Value::as_i64)
                .map(|t| format!("; evidence due {}", utc(t)))
                .unwrap_or_default();
            (
                ":rotating_light:",
                "Dispute opened",
                format!("{amount_text} by {}, reason {reason}{due}", who(f)),
            )
        }
        "customer.subscription.deleted" => {
            let interval = o
                .pointer("/items/data/0/price/recurring/interval")
                .or_else(|| o.pointer("/items/data/0/plan/interval"))
                .and_then(Value::as_str)
                .map(|i| format!("/{i}"))
                .unwrap_or_default();
            let reason = o
                .pointer("/cancellation_details/reason")
                .and_then(Value::as_str)
                .map(|r| format!(", reason {r}"))
                .unwrap_or_default();
            (
                ":wave:",
                "Subscription canceled",
                format!("{amount_text}{interval} for {} ({id}{reason})", who(f)),
            )
        }
        "radar.early_fraud_warning.created" => {
            let kind = str_field(o, "fraud_type").unwrap_or("fraud");
            (
                ":mag:",
                "Early fraud warning",
                format!(
                    "{kind} on a payment of {amount_text} by {}; refunding it now avoids a dispute",
                    who(f)
                ),
            )
        }
        other => {
            let kind = str_field(o, "object").unwrap_or("object");
            let amount = money.map(|m| format!(": {m}")).unwrap_or_default();
            (":bell:", other, format!("{kind} {id} of {}{amount}", who(f)))
        }
    };
    format!("{icon} *{headline}*: {detail}.\n<{}|Open in Stripe>", dashboard_url(f))
}

/// The message for an event that ended failed (a dead letter).
pub fn dead_letter_message(f: &Facts) -> String {
    let error = f.last_error.unwrap_or("unknown error");
    let error: String = if error.chars().count() > MAX_ERROR {
        error.chars().take(MAX_ERROR).chain("…".chars()).collect()
    } else {
        error.to_owned()
    };
    format!(
        ":x: *Event not applied*: {} {} failed {} times: {error}. Fix the cause, then run `SELECT stripe_sync.replay_event('{}')`.\n<{}|Open in Stripe>",
        f.event_type,
        f.event_id,
        f.attempts,
        f.event_id,
        dashboard_url(&Facts { object: &Value::Null, ..f.clone() })
    )
}

/// One alert folded into a digest.
#[derive(Debug, Clone)]
pub struct Folded {
    /// The event type, or "dead_letter".
    pub what: String,
    pub amount: Option<(i64, String)>,
    pub url: String,
    pub object_id: String,
}

/// One message standing for `items` (a burst over `burst` messages a minute).
pub fn digest_message(items: &[Folded], burst: i64, digest_id: i64) -> String {
    let mut by_type: BTreeMap<&str, (usize, BTreeMap<&str, i64>)> = BTreeMap::new();
    for item in items {
        let entry = by_type.entry(item.what.as_str()).or_default();
        entry.0 += 1;
        if let Some((a, c)) = &item.amount {
            *entry.1.entry(c.as_str()).or_default() += a;
        }
    }
    let mut text = format!(
        ":bell: *stripe_sync digest*: {} alerts at once, more than stripe_sync.alert_burst ({burst} a minute), folded into this message:",
        items.len()
    );
    for (what, (count, sums)) in &by_type {
        let sums: Vec<String> = sums.iter().map(|(c, a)| money::display(*a, c)).collect();
        let total = if sums.is_empty() { String::new() } else { format!(", {}", sums.join(" + ")) };
        text.push_str(&format!("\n• {count} × {what}{total}"));
    }
    let examples: Vec<String> = items
        .iter()
        .take(DIGEST_EXAMPLES)
        .map(|i| format!("<{}|{}>", i.url, i.object_id))
        .collect();
    text.push_str(&format!("\nFor example: {}", examples.join(", ")));
    if items.len() > DIGEST_EXAMPLES {
        text.push_str(&format!(" and {} more", items.len() - DIGEST_EXAMPLES));
    }
    text.push_str(&format!(
        ".\nAll of them: SELECT * FROM stripe_sync.alerts WHERE digest_id = {digest_id};"
    ));
    text
}

/// A Unix time as "2026-11-24 10:00 UTC".
fn utc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

fn str_field<'v>(v: &'v Value, name: &str) -> Option<&'v str> {
    v.get(name).and_then(Value::as_str)
}

fn int_field(v: &Value, name: &str) -> Option<i64> {
    v.get(name).and_then(Value::as_i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts<'a>(event_type: &'a str, object: &'a Value) -> Facts<'a> {
        Facts { event_id: "evt_1", event_type, object, ..Facts::default() }
    }

    #[test]
    fn payment_failed_says_who_how_much_and_where() {
        let inv = json!({"id": "in_1", "object": "invoice", "amount_due": 2900, "currency": "usd",
                         "attempt_count": 2, "next_payment_attempt": 1_795_000_000, "number": "ABC-0001"});
        let f = Facts {
            customer_email: Some("jane@example.com"),
            customer_name: Some("Jane Doe"),
            ..facts("invoice.payment_failed", &inv)
        };
        let m = event_message(&f);
        assert!(m.contains("*Payment failed*"), "{m}");
        assert!(m.contains("29.00 USD from Jane Doe <jane@example.com>"), "{m}");
        assert!(m.contains("invoice ABC-0001, attempt 2; next attempt 2026-11-18"), "{m}");
        assert!(
            m.contains("<https://dashboard.stripe.com/test/invoices/in_1|Open in Stripe>"),
            "{m}"
        );
    }

    #[test]
    fn invoice_fields_stand_in_for_a_missing_customer_row() {
        let inv = json!({"id": "in_2", "object": "invoice", "amount_due": 500, "currency": "jpy",
                         "customer": "cus_9", "customer_email": "a@b.c", "livemode": true});
        let f = Facts { livemode: true, ..facts("invoice.payment_failed", &inv) };
        let m = event_message(&f);
        assert!(m.contains("500 JPY from a@b.c"), "{m}");
        assert!(m.contains("no further attempt"), "{m}");
        assert!(m.contains("https://dashboard.stripe.com/invoices/in_2"), "{m}");
        let none = json!({"id": "in_3", "object": "invoice", "amount_due": 1, "currency": "usd", "customer": "cus_9"});
        assert!(event_message(&facts("invoice.payment_failed", &none)).contains("customer cus_9"));
    }

    #[test]
    fn connected_accounts_link_into_their_dashboard() {
        let ch = json!({"id": "ch_1", "object": "charge", "amount": 100, "currency": "eur"});
        let f = Facts { account: Some("acct_42"), ..facts("charge.failed", &ch) };
        assert_eq!(dashboard_url(&f), "https://dashboard.stripe.com/acct_42/test/payments/ch_1");
        let m = event_message(&f);
        assert!(m.contains("*charge.failed*: charge ch_1 of an unknown customer: 1.00 EUR"), "{m}");
    }

    #[test]
    fn disputes_cancellations_and_fraud_warnings() {
        let dp = json!({"id": "dp_1", "object": "dispute", "amount": 9900, "currency": "usd",
                        "reason": "fraudulent", "evidence_details": {"due_by": 1_795_000_000}});
        let m = event_message(&facts("charge.dispute.created", &dp));
        assert!(m.contains("*Dispute opened*: 99.00 USD by an unknown customer, reason fraudulent; evidence due"), "{m}");
        assert!(m.contains("/test/disputes/dp_1|"), "{m}");

        let sub = json!({"id": "sub_1", "object": "subscription", "currency": "usd",
                         "items": {"data": [{"quantity": 2, "price": {"unit_amount": 2900, "recurring": {"interval": "month"}}}]}});
        let m = event_message(&Facts {
            customer_name: Some("Ann"),
            ..facts("customer.subscription.deleted", &sub)
        });
        assert!(m.contains("*Subscription canceled*: 58.00 USD/month for Ann (sub_1)"), "{m}");

        let efw = json!({"id": "issfr_1", "object": "radar.early_fraud_warning", "charge": "ch_7",
                         "fraud_type": "made_with_stolen_card"});
        let f = Facts {
            charge_amount: Some((1500, "gbp")),
            ..facts("radar.early_fraud_warning.created", &efw)
        };
        let m = event_message(&f);
        assert!(m.contains("made_with_stolen_card on a payment of 15.00 GBP"), "{m}");
        assert!(m.contains("/test/payments/ch_7|"), "{m}");
    }

    #[test]
    fn dead_letters_quote_a_bounded_error_and_link_the_event() {
        let long = "x".repeat(1000);
        let f = Facts {
            event_id: "evt_9",
            event_type: "invoice.paid",
            attempts: 8,
            last_error: Some(&long),
            object: &Value::Null,
            ..Facts::default()
        };
        let m = dead_letter_message(&f);
        assert!(m.contains("invoice.paid evt_9 failed 8 times"), "{m}");
        assert!(m.contains("replay_event('evt_9')"), "{m}");
        assert!(m.contains("https://dashboard.stripe.com/test/events/evt_9"), "{m}");
        assert!(m.len() < 600, "{}", m.len());
    }

    #[test]
    fn a_digest_counts_per_type_and_sums_per_currency() {
        let mut items: Vec<Folded> = (0..200)
            .map(|i| Folded {
                what: "invoice.payment_failed".into(),
                amount: Some((2900, "usd".into())),
                url: format!("https://dashboard.stripe.com/test/invoices/in_{i}"),
                object_id: format!("in_{i}"),
            })
            .collect();
        items.push(Folded {
            what: "dead_letter".into(),
            amount: None,
            url: "u".into(),
            object_id: "evt_1".into(),
        });
        let m = digest_message(&items, 10, 77);
        assert!(m.contains("*stripe_sync digest*: 201 alerts"), "{m}");
        assert!(m.contains("• 200 × invoice.payment_failed, 5800.00 USD"), "{m}");
        assert!(m.contains("• 1 × dead_letter\n"), "{m}");
        assert!(m.contains("<https://dashboard.stripe.com/test/invoices/in_0|in_0>"), "{m}");
        assert!(m.contains("and 196 more"), "{m}");
        assert!(m.contains("digest_id = 77"), "{m}");
    }
}
