//! A backfill's cursor (`stripe_sync.sync_cursors`, one row per account and
//! object type): where a run starts (resuming an interrupted one, or from the
//! last completed run's high-water mark), how far it got, and its end.

use crate::runs::Run;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

/// Where a backfill starts: resuming an interrupted run, or a new one.
pub(super) struct Start {
    pub starting_after: Option<String>,
    pub created_gte: Option<i64>,
    pub full: bool,
    pub resumed: bool,
}

/// Starts (or resumes) the run of `object`. Without `by_created` (a list that
/// takes no created filter) every run lists everything: a full run.
pub(super) fn begin_cursor(
    run: &Run,
    object: &str,
    created_after: Option<i64>,
    by_created: bool,
) -> Start {
    let account = run.account_key();
    Spi::connect_mut(|c| {
        let args: [DatumWithOid; 2] = [account.into(), object.into()];
        c.update(
            "INSERT INTO stripe_sync.sync_cursors (account, object) VALUES ($1, $2) ON CONFLICT (account, object) DO NOTHING",
            None,
            &args,
        )
        .expect("cursor row");
        let row = c
            .update(
                "SELECT in_progress, starting_after, extract(epoch FROM created_after)::bigint, high_water
                   FROM stripe_sync.sync_cursors WHERE account = $1 AND object = $2 FOR UPDATE",
                None,
                &args,
            )
            .expect("read cursor")
            .first();
        let in_progress = row.get::<bool>(1).ok().flatten().unwrap_or(false);
        let cursor_after = row.get::<String>(2).ok().flatten();
        let cursor_created = row.get::<i64>(3).ok().flatten();
        let high_water = row.get::<i64>(4).ok().flatten();
        // An interrupted run with the same filter resumes where it stopped.
        let same_filter =
            created_after.is_none() || created_after.filter(|t| *t > 0) == cursor_created;
        let start = if in_progress && same_filter {
            Start {
                starting_after: cursor_after,
                created_gte: cursor_created,
                full: cursor_created.is_none(),
                resumed: true,
            }
        } else {
            // Explicit filter, or incremental from the last completed run, or
            // everything (no filter at all: created_after at or before the epoch).
            let created_gte = created_after.or(high_water).filter(|t| *t > 0 && by_created);
            Start { starting_after: None, created_gte, full: created_gte.is_none(), resumed: false }
        };
        let args: [DatumWithOid; 6] = [
            account.into(),
            object.into(),
            start.created_gte.map(|t| t as f64).into(),
            start.starting_after.as_deref().into(),
            start.resumed.into(),
            run.id.into(),
        ];
        // A resumed run keeps the start of the run it continues: the pages
        // committed before the interruption were fetched after that.
        c.update(
            "UPDATE stripe_sync.sync_cursors
                SET in_progress = true, starting_after = $4,
                    created_after = to_timestamp($3),
                    run_high_water = CASE WHEN $5 THEN run_high_water END,
                    run_started_at = CASE WHEN $5 THEN run_started_at
                                          ELSE (SELECT started_at FROM stripe_sync.sync_runs WHERE id = $6) END
              WHERE account = $1 AND object = $2",
            None,
            &args,
        )
        .expect("start cursor");
        let run_args: [DatumWithOid; 3] =
            [run.id.into(), start.resumed.into(), start.created_gte.map(|t| t as f64).into()];
        c.update(
            "UPDATE stripe_sync.sync_runs SET resumed = $2, created_after = to_timestamp($3) WHERE id = $1",
            None,
            &run_args,
        )
        .expect("run start");
        if !start.resumed {
            c.update(
                "DELETE FROM stripe_sync.sync_slices WHERE account = $1 AND object = $2",
                None,
                &args[..2],
            )
            .expect("clear what an abandoned run left");
        }
        start
    })
}

/// Records the page committed with it: where the listing goes on.
pub(super) fn save_cursor(run: &Run, object: &str, last: Option<&str>, high: Option<i64>) {
    let account = run.account_key();
    let args: [DatumWithOid; 4] = [account.into(), object.into(), last.into(), high.into()];
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_cursors
            SET starting_after = coalesce($3, starting_after),
                run_high_water = greatest(run_high_water, $4)
          WHERE account = $1 AND object = $2",
        &args,
    )
    .expect("save cursor");
}

/// Ends the run: its high-water mark is where the next incremental run starts.
pub(super) fn finish_cursor(run: &Run, object: &str) {
    let account = run.account_key();
    let args: [DatumWithOid; 2] = [account.into(), object.into()];
    Spi::run_with_args(
        "UPDATE stripe_sync.sync_cursors
            SET in_progress = false, starting_after = NULL, created_after = NULL, run_started_at = NULL,
                high_water = greatest(high_water, run_high_water,
                                      (SELECT max(s.high_water) FROM stripe_sync.sync_slices s
                                        WHERE s.account = $1 AND s.object = $2)),
                run_high_water = NULL, last_completed_at = now()
          WHERE account = $1 AND object = $2",
        &args,
    )
    .expect("finish cursor");
    Spi::run_with_args(
        "DELETE FROM stripe_sync.sync_slices WHERE account = $1 AND object = $2",
        &args,
    )
    .expect("drop the run's slices");
    crate::accounts::touch(account, crate::accounts::Done::Backfill);
}

/// The start of the run in progress for account `$2` (`''` for the platform)
/// and object `$3`, `$1` being the current call's run: the call's own start
/// when the cursor has none (a run begun before 0.4.0).
pub(super) const RUN_START: &str = "SELECT coalesce(c.run_started_at, r.started_at)
                           FROM stripe_sync.sync_runs r
                           LEFT JOIN stripe_sync.sync_cursors c ON c.account = $2 AND c.object = $3
                          WHERE r.id = $1";
