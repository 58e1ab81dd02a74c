//! Slack alerts: the worker's side of `stripe_sync.alerts`. Alerts are queued
//! with the apply (sql/queries/mark_done.sql, mark_failed.sql). Here a short
//! transaction leases the due ones and writes their text (or folds a burst
//! into one digest), the POSTs go out with no transaction open, and another
//! short transaction records each outcome. A transient failure (network, 429,
//! 5xx) only delays an alert; Retry-After is honoured.

use crate::{config, outbox, slack};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::prelude::*;
use serde_json::Value;
use std::time::Duration;
use stripe_sync_core::alert::{self, Facts, Folded};
use stripe_sync_core::retry::Failure;

/// Alerts looked at per round (a larger burst is folded over several digests).
const LIMIT: i64 = 1000;
/// Retries of a transient failure wait at most this long.
const RETRY_CAP: Duration = Duration::from_secs(600);

const CLAIM: &str = include_str!("../sql/queries/alert_claim.sql");
const FAILED: &str = include_str!("../sql/queries/alert_failed.sql");
/// Leases claimed alerts for 2 minutes (a crash mid-send retries after it).
const LEASE: &str = include_str!("../sql/queries/alert_lease.sql");
const SENT: &str = include_str!("../sql/queries/alert_sent.sql");
const RELEASE: &str = include_str!("../sql/queries/alert_release.sql");

/// Messages sent in the last minute, and whether a digest went out in it.
const RECENT: &str = include_str!("../sql/queries/alert_recent.sql");

/// One due alert with the facts its message needs.
struct Due {
    id: i64,
    kind: String,
    event_id: String,
    event_type: String,
    message: Option<String>,
    attempts: i32,
    object: Value,
    livemode: bool,
    account: Option<String>,
    event_attempts: i32,
    last_error: Option<String>,
    customer_id: Option<String>,
    email: Option<String>,
    name: Option<String>,
    charge: Option<(i64, String)>,
}

impl Due {
    fn facts(&self) -> Facts<'_> {
        Facts {
            event_id: &self.event_id,
            event_type: &self.event_type,
            object: &self.object,
            livemode: self.livemode,
            account: self.account.as_deref(),
            customer_id: self.customer_id.as_deref(),
            customer_email: self.email.as_deref(),
            customer_name: self.name.as_deref(),
            charge_amount: self.charge.as_ref().map(|(a, c)| (*a, c.as_str())),
            attempts: self.event_attempts,
            last_error: self.last_error.as_deref(),
        }
    }

    fn text(&self) -> String {
        match self.kind.as_str() {
            "dead_letter" => alert::dead_letter_message(&self.facts()),
            _ => alert::event_message(&self.facts()),
        }
    }
}

/// A message to post for one alerts row.
struct Outgoing {
    id: i64,
    attempts: i32,
    text: String,
}

/// Sends what is due; returns how many messages were posted or tried.
pub fn run_due() -> usize {
    let url = config::slack_webhook_url();
    if url.is_empty() {
        return 0;
    }
    let outbox = BackgroundWorker::transaction(|| Spi::connect_mut(claim));
    for (i, msg) in outbox.iter().enumerate() {
        check_for_interrupts!();
        match slack::post(&url, &msg.text) {
            slack::Outcome::Sent => BackgroundWorker::transaction(|| sent(msg)),
            slack::Outcome::Refused { error } => {
                BackgroundWorker::transaction(|| failed(msg, &error, None, true));
            }
            slack::Outcome::Retry { error, after } => {
                // Slack is down or slowing us: the rest waits as long as this one.
                let delay = BackgroundWorker::transaction(|| failed(msg, &error, after, false));
                let rest: Vec<i64> = outbox[i + 1..].iter().map(|m| m.id).collect();
                BackgroundWorker::transaction(|| release(&rest, delay));
                break;
            }
        }
    }
    outbox.len()
}

fn claim(client: &mut pgrx::spi::SpiClient) -> Vec<Outgoing> {
    let due: Vec<Due> = client
        .update(CLAIM, None, &[LIMIT.into()])
        .expect("claim alerts")
        .map(|row| Due {
            id: row.get::<i64>(1).ok().flatten().unwrap_or_default(),
            kind: row.get::<String>(2).ok().flatten().unwrap_or_default(),
            event_id: row.get::<String>(3).ok().flatten().unwrap_or_default(),
            event_type: row.get::<String>(4).ok().flatten().unwrap_or_default(),
            message: row.get::<String>(5).ok().flatten(),
            attempts: row.get::<i32>(6).ok().flatten().unwrap_or_default(),
            object: row.get::<pgrx::JsonB>(7).ok().flatten().map(|j| j.0).unwrap_or(Value::Null),
            livemode: row.get::<bool>(8).ok().flatten().unwrap_or(false),
            account: row.get::<String>(9).ok().flatten(),
            event_attempts: row.get::<i32>(10).ok().flatten().unwrap_or_default(),
            last_error: row.get::<String>(11).ok().flatten(),
            customer_id: row.get::<String>(12).ok().flatten(),
            email: row.get::<String>(13).ok().flatten(),
            name: row.get::<String>(14).ok().flatten(),
            charge: match (row.get::<i64>(15).ok().flatten(), row.get::<String>(16).ok().flatten())
            {
                (Some(a), Some(c)) => Some((a, c)),
                _ => None,
            },
        })
        .collect();
    if due.is_empty() {
        return Vec::new();
    }
    let (digests, alerts): (Vec<&Due>, Vec<&Due>) = due.iter().partition(|d| d.kind == "digest");
    let mut outbox: Vec<Outgoing> = digests
        .iter()
        .map(|d| Outgoing {
            id: d.id,
            attempts: d.attempts,
            text: d.message.clone().unwrap_or_default(),
        })
        .collect();
    if !alerts.is_empty() {
        let recent = client.update(RECENT, None, &[]).expect("count recent alerts").first();
        let sent_last_minute = recent.get::<i64>(1).ok().flatten().unwrap_or(0);
        let digest_recently = recent.get::<bool>(2).ok().flatten().unwrap_or(false);
        if alerts.len() as i64 + sent_last_minute <= config::alert_burst() {
            outbox.extend(alerts.iter().map(|d| Outgoing {
                id: d.id,
                attempts: d.attempts,
                text: d.text(),
            }));
        } else if !digest_recently {
            outbox.push(fold(client, &alerts));
        }
        // Otherwise a digest went out less than a minute ago: these wait for the next one.
    }
    let ids: Vec<i64> = outbox.iter().map(|m| m.id).collect();
    client.update(LEASE, None, &[ids.into()]).expect("lease alerts");
    outbox
}

/// Folds `alerts` into a new digest alert and returns its message.
fn fold(client: &mut pgrx::spi::SpiClient, alerts: &[&Due]) -> Outgoing {
    let id = client
        .update(
            "INSERT INTO stripe_sync.alerts (kind, status) VALUES ('digest', 'pending') RETURNING id",
            None,
            &[],
        )
        .expect("create a digest")
        .first()
        .get_one::<i64>()
        .expect("digest id")
        .expect("digest id");
    let items: Vec<Folded> = alerts
        .iter()
        .map(|d| {
            let f = d.facts();
            Folded {
                what: if d.kind == "dead_letter" {
                    "dead_letter".into()
                } else {
                    d.event_type.clone()
                },
                amount: if d.kind == "dead_letter" { None } else { alert::amount(&f) },
                url: alert::dashboard_url(&f),
                object_id: f
                    .object
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or(&d.event_id)
                    .to_owned(),
            }
        })
        .collect();
    let text = alert::digest_message(&items, config::alert_burst(), id);
    let folded: Vec<i64> = alerts.iter().map(|d| d.id).collect();
    client
        .update(
            "UPDATE stripe_sync.alerts SET status = 'folded', digest_id = $1 WHERE id = ANY($2)",
            None,
            &[id.into(), folded.into()],
        )
        .expect("fold alerts");
    client
        .update(
            "UPDATE stripe_sync.alerts SET message = $2 WHERE id = $1",
            None,
            &[id.into(), text.as_str().into()],
        )
        .expect("write the digest");
    Outgoing { id, attempts: 0, text }
}

fn sent(msg: &Outgoing) {
    Spi::run_with_args(SENT, &[msg.id.into(), msg.text.as_str().into()])
        .expect("record a sent alert");
}

/// Records a failed POST; a refused one ends failed after
/// stripe_sync.max_attempts, a transient one is retried until it goes
/// through. Returns the delay before the next try.
fn failed(msg: &Outgoing, error: &str, retry_after: Option<Duration>, refused: bool) -> Duration {
    let failure = if refused { Failure::Retryable } else { Failure::Transient };
    let next = outbox::next_within(msg.attempts + 1, failure, RETRY_CAP, retry_after);
    Spi::run_with_args(
        FAILED,
        &[msg.id.into(), error.into(), next.delay_ms().into(), next.status().into()],
    )
    .expect("record a failed alert");
    warning!("stripe_sync: a Slack alert was not delivered ({error}); see stripe_sync.alerts");
    Duration::from_millis(next.delay_ms() as u64)
}

/// Puts leased alerts that were not tried back, due after `delay`.
fn release(ids: &[i64], delay: Duration) {
    if ids.is_empty() {
        return;
    }
    Spi::run_with_args(RELEASE, &[ids.to_vec().into(), (delay.as_millis() as f64).into()])
        .expect("release alerts");
}
