-- Deletes processed and skipped events handled before now() - $1, with their
-- finished handler runs, and alerts done with (sent, folded, failed) that
-- were queued before then. Pending and failed events are never purged: they
-- still need someone; nor is an event whose handlers still have to run.
WITH gone AS (
    DELETE FROM stripe_sync.events e
     WHERE e.status IN ('processed', 'skipped') AND e.processed_at < now() - $1
       AND NOT EXISTS (SELECT 1 FROM stripe_sync.handler_runs r
                        WHERE r.event_id = e.id AND r.status = 'pending')
    RETURNING 1
), old_alerts AS (
    DELETE FROM stripe_sync.alerts
     WHERE status <> 'pending' AND created_at < now() - $1
)
SELECT count(*) FROM gone
