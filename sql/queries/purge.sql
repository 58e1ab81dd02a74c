-- Deletes processed and skipped events handled before now() - $1. Pending and
-- failed events are never purged: they still need someone.
WITH gone AS (
    DELETE FROM stripe_sync.events
     WHERE status IN ('processed', 'skipped') AND processed_at < now() - $1
    RETURNING 1
)
SELECT count(*) FROM gone
