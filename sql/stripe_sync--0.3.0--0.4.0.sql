-- stripe_sync 0.4.0: a full backfill finds the rows it did not list by the
-- time they were last written, instead of by a list of every id it saw.
-- Both ALTER EXTENSION stripe_sync UPDATE and a fresh install run this file
-- (sql/README.md).
--
-- Every object a run lists is applied as an update made at its fetch time, or
-- left alone because the row holds something newer still; either way the
-- row's _last_event_at is then at or after the run's start. The rows of the
-- account written before that are the ones the listing did not return, and a
-- full run retrieves them one by one at its end (src/backfill.rs, reconcile).
-- The ids no longer need recording page by page (sync_seen, an unlogged table
-- that a crash emptied, so that a resumed run retrieved every row listed
-- before the crash).
--
-- A run in progress at the upgrade (run_started_at still NULL) resumes with
-- its own start instead: rows it listed before the upgrade are retrieved too,
-- which costs requests and changes nothing.

ALTER TABLE stripe_sync.sync_cursors ADD COLUMN run_started_at timestamptz;
COMMENT ON COLUMN stripe_sync.sync_cursors.run_started_at IS
  'Start of the run in progress (its sync_runs.started_at; kept when a later call resumes it): a full run''s reconciliation retrieves the rows last written before it.';

DROP TABLE stripe_sync.sync_seen;
