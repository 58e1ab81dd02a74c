-- Deletes processed and skipped events handled before now() - $1, with their
-- finished handler runs, and alerts done with (sent, folded, failed) that
-- were queued before then. Pending and failed events are never purged: they
-- still need someone; nor is an event whose handlers still have to run.
-- Catch-up and verify runs finished before then go too (the worker's catch-up
-- records a run per account every few minutes), with the drift a verify
-- found; each account's newest catch-up stays (status.catch_up_gap reads it).
WITH gone AS (
    DELETE FROM stripe_sync.events e
     WHERE e.status IN ('processed', 'skipped') AND e.processed_at < now() - $1
       AND NOT EXISTS (SELECT 1 FROM stripe_sync.handler_runs r
                        WHERE r.event_id = e.id AND r.status = 'pending')
    RETURNING 1
), old_alerts AS (
    DELETE FROM stripe_sync.alerts
     WHERE status <> 'pending' AND created_at < now() - $1
), old_runs AS (
    DELETE FROM stripe_sync.sync_runs r
     WHERE r.kind IN ('catch_up', 'verify') AND r.finished_at < now() - $1
       AND (r.kind = 'verify'
            OR EXISTS (SELECT 1 FROM stripe_sync.sync_runs n
                        WHERE n.kind = 'catch_up' AND n.account IS NOT DISTINCT FROM r.account AND n.id > r.id))
    RETURNING r.id, coalesce(r.account, '') AS account
), old_drift AS (
    DELETE FROM stripe_sync.drift d USING old_runs o WHERE d.account = o.account AND d.run = o.id
)
SELECT count(*) FROM gone
