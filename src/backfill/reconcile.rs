//! After a full backfill: rows of the account that the listing no longer
//! returned are retrieved one by one, and marked deleted when Stripe confirms
//! they are gone.

use super::cursors::RUN_START;
use crate::listing::get;
use crate::runs::Run;
use crate::{apply, stripe};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use serde_json::Value;
use stripe_sync_core::http::ApiError;
use stripe_sync_core::objects::Resource;

/// After a full run: rows of this account that the API no longer listed are
/// retrieved one by one; those confirmed gone (404 or a deleted stub) are
/// marked deleted. Records listed against held.
///
/// A listed object was applied as an update made at its fetch time, or left
/// alone because its row holds something newer, so its row was last written
/// at or after the run's start (`sync_cursors.run_started_at`, kept across a
/// resume). The rows written before are the ones the listing did not return.
/// Rows that an event created after the run's start wrote are left out too:
/// that event is newer than anything the listing could tell.
pub(super) fn reconcile(run: &Run, resource: &Resource) -> Result<(), ApiError> {
    let Some(spec) = stripe_sync_core::mapping::spec_for(resource.object) else { return Ok(()) };
    let account = run.account.as_deref();
    let args: [DatumWithOid; 3] = [run.id.into(), run.account_key().into(), resource.object.into()];
    let missing: Vec<String> = BackgroundWorker::transaction(|| {
        let sql = format!(
            "SELECT t.id FROM stripe_sync.{} t
              WHERE NOT t._deleted AND t._account_id = $2
                AND coalesce(t._last_event_at, '-infinity') < ({RUN_START})",
            spec.table
        );
        Spi::connect(|c| {
            c.select(&sql, None, &args)
                .expect("missing rows")
                .filter_map(|r| r.get::<String>(1).ok().flatten())
                .collect()
        })
    });
    let mut gone = Vec::new();
    for id in &missing {
        check_for_interrupts!();
        // Kept when it cannot be retrieved by its id alone: nothing says it is gone.
        let Some(path) = resource.retrieve_path(id) else { continue };
        match get(&path, &[], account) {
            Ok(v) if v.get("deleted").and_then(Value::as_bool) == Some(true) => gone.push(v),
            Ok(_) => {} // still there, just not listed (e.g. a filter); keep it
            Err(e) if e.status() == Some(404) => {
                gone.push(stripe_sync_core::mapping::tombstone(resource.object, id))
            }
            Err(e) => return Err(e),
        }
    }
    BackgroundWorker::transaction(|| {
        apply::apply_objects(&gone, stripe::now(), account);
        // Listed: the objects committed by this run and by the interrupted
        // calls it resumed (each page counts itself in its call's row).
        let sql = format!(
            "UPDATE stripe_sync.sync_runs r
                SET deleted = $4,
                    listed = (SELECT sum(x.objects) FROM stripe_sync.sync_runs x
                               WHERE x.kind = 'backfill' AND x.object = $3
                                 AND x.account IS NOT DISTINCT FROM nullif($2, '')
                                 AND x.started_at >= ({RUN_START}) AND x.id <= $1),
                    rows_held = (SELECT count(*) FROM stripe_sync.{} t
                                  WHERE NOT t._deleted AND t._account_id = $2)
              WHERE r.id = $1",
            spec.table
        );
        let args: [DatumWithOid; 4] = [
            run.id.into(),
            run.account_key().into(),
            resource.object.into(),
            (gone.len() as i64).into(),
        ];
        Spi::run_with_args(&sql, &args).expect("record reconciliation");
    });
    Ok(())
}
