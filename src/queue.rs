//! The events table as a queue: insert once, claim a batch, mark events done or
//! failed. No HTTP and no apply logic here.

use crate::plans::{self, types::*};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use stripe_sync_core::event::EventMeta;
use stripe_sync_core::retry::Next;
use stripe_sync_core::shares::share_bounds;

const INSERT_EVENT: &str = include_str!("../sql/queries/insert_event.sql");
const INSERT_EVENT_BEFORE_0_9_0: &str =
    include_str!("../sql/queries/insert_event_before_0_9_0.sql");
const CLAIM_BATCH: &str = include_str!("../sql/queries/claim_batch.sql");
const RECLAIM: &str = include_str!("../sql/queries/reclaim.sql");
const MARK_DONE: &str = include_str!("../sql/queries/mark_done.sql");
const MARK_FAILED: &str = include_str!("../sql/queries/mark_failed.sql");
const REQUEUE: &str = include_str!("../sql/queries/requeue.sql");
const PURGE: &str = include_str!("../sql/queries/purge.sql");

/// One event marked done, as NOTIFY reports it (notify.rs).
pub struct Applied {
    pub id: String,
    pub event_type: String,
    pub status: String,
}

/// An event claimed for this batch.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub object_type: Option<String>,
    pub attempts: i32,
    /// A thin event: its object is read from the API, not applied from it.
    pub thin: bool,
}

/// Stores a verified event (`data`: its body as a jsonb datum) unless its id
/// is already there. True when stored. Webhooks keep arriving between the
/// install of a new library and `ALTER EXTENSION stripe_sync UPDATE`: into
/// an older schema an event goes as that schema can hold it.
pub fn insert(meta: &EventMeta, data: pg_sys::Datum) -> bool {
    let args: [DatumWithOid; 9] = [
        meta.id.as_str().into(),
        meta.event_type.as_str().into(),
        (meta.created as f64).into(),
        // SAFETY: a jsonb datum in the current memory context.
        unsafe { DatumWithOid::new(data, pg_sys::JSONBOID) },
        meta.object_type.as_deref().into(),
        meta.object_id.as_deref().into(),
        meta.account.as_deref().into(),
        meta.api_version.as_deref().into(),
        meta.thin.into(),
    ];
    let types = [TEXT, TEXT, FLOAT8, JSONB, TEXT, TEXT, TEXT, TEXT, BOOL];
    let (sql, n) = if crate::version::is_current() {
        (INSERT_EVENT, 9)
    } else {
        (INSERT_EVENT_BEFORE_0_9_0, 8)
    };
    Spi::connect_mut(|client| {
        plans::execute(client, sql, &types[..n], &args[..n], |rows| !rows.is_empty())
    })
}

/// One applier's share of the queue when several drain it together: share
/// `slot` of `of` (see claim_batch.sql and stripe_sync_core::shares).
pub type Share = Option<(i32, i32)>;

/// Claims up to `limit` due pending events (of `share` only, if given),
/// locking them until the transaction ends.
pub fn claim(limit: usize, share: Share) -> Vec<Claimed> {
    let limit = limit as i64;
    let (lo, hi) = share.map_or((i32::MIN, i32::MAX), |(slot, of)| share_bounds(slot, of));
    let args: [DatumWithOid; 3] = [limit.into(), lo.into(), hi.into()];
    Spi::connect_mut(|client| {
        plans::execute(client, CLAIM_BATCH, &[INT8, INT4, INT4], &args, claimed_rows)
    })
}

/// Claims the events `ids` again (those still pending and not claimed by
/// another drainer), locking them until the transaction ends.
pub fn reclaim(ids: &[&str]) -> Vec<Claimed> {
    let args: [DatumWithOid; 1] = [ids.to_vec().into()];
    Spi::connect_mut(|client| plans::execute(client, RECLAIM, &[TEXT_ARRAY], &args, claimed_rows))
}

fn claimed_rows(rows: pgrx::spi::SpiTupleTable) -> Vec<Claimed> {
    rows.map(|row| Claimed {
        id: row.get::<String>(1).ok().flatten().unwrap_or_default(),
        object_type: row.get::<String>(2).ok().flatten(),
        attempts: row.get::<i32>(3).ok().flatten().unwrap_or(1),
        thin: row.get::<bool>(4).ok().flatten().unwrap_or(false),
    })
    .collect()
}

/// Marks applied events: processed when their object type is in `mirrored`,
/// else skipped; queues their handler runs, and alerts for those whose type
/// is in `alert_types`. Returns them for NOTIFY.
pub fn mark_done(ids: &[&str], mirrored: &[&str], alert_types: &[String]) -> Vec<Applied> {
    let alert_types: Vec<&str> = alert_types.iter().map(String::as_str).collect();
    let args: [DatumWithOid; 3] =
        [ids.to_vec().into(), mirrored.to_vec().into(), alert_types.into()];
    Spi::connect_mut(|client| {
        plans::execute(client, MARK_DONE, &[TEXT_ARRAY, TEXT_ARRAY, TEXT_ARRAY], &args, |rows| {
            rows.map(|row| Applied {
                id: row.get::<String>(1).ok().flatten().unwrap_or_default(),
                event_type: row.get::<String>(2).ok().flatten().unwrap_or_default(),
                status: row.get::<String>(3).ok().flatten().unwrap_or_default(),
            })
            .collect()
        })
    })
}

/// Makes events due again with a fresh attempt budget: every failed one
/// (`id` None) or the one given. Returns their ids.
pub fn requeue(id: Option<&str>) -> Vec<String> {
    Spi::connect_mut(|client| {
        let rows = client.update(REQUEUE, None, &[id.into()]).expect("requeue events");
        rows.filter_map(|row| row.get::<String>(1).ok().flatten()).collect()
    })
}

/// Deletes processed and skipped events handled longer than `retention` ago.
/// Returns how many.
pub fn purge(retention: pgrx::datum::Interval) -> i64 {
    Spi::connect_mut(|client| {
        client
            .update(PURGE, None, &[retention.into()])
            .expect("purge events")
            .first()
            .get_one::<i64>()
            .expect("purge count")
            .unwrap_or(0)
    })
}

/// Records a failed attempt: the event is due again later, or left `failed`
/// (with a Slack alert when `alert_dead_letter`), as `next` says.
pub fn mark_failed(id: &str, error: &str, next: Next, alert_dead_letter: bool) {
    let args: [DatumWithOid; 5] = [
        id.into(),
        error.into(),
        next.delay_ms().into(),
        next.status().into(),
        alert_dead_letter.into(),
    ];
    Spi::connect_mut(|client| {
        client.update(MARK_FAILED, None, &args).expect("mark an event failed");
    });
}
