-- Events $1 were applied: processed when their object type is mirrored ($2), else
-- skipped; this attempt is counted. In the same statement (so in the batch's
-- transaction) each gets a run per matching handler, and an alert when its
-- type is in $3 (stripe_sync.alert_events; empty while Slack is not set up).
-- A replayed event gets neither twice. Returns what NOTIFY reports.
WITH done AS (
    UPDATE stripe_sync.events
       SET status = CASE WHEN object_type = ANY($2) THEN 'processed' ELSE 'skipped' END,
           attempts = attempts + 1,
           processed_at = now(),
           last_error = NULL
     WHERE id = ANY($1)
    RETURNING id, type, status
), runs AS (
    INSERT INTO stripe_sync.handler_runs (event_id, handler_id)
    SELECT done.id, h.id FROM done JOIN stripe_sync.handlers h ON done.type LIKE h.type_like
    ON CONFLICT (event_id, handler_id) DO NOTHING
), alerts AS (
    INSERT INTO stripe_sync.alerts (event_id, event_type, kind)
    SELECT done.id, done.type, 'event' FROM done WHERE done.type = ANY($3)
    ON CONFLICT (event_id, kind) DO NOTHING
)
SELECT id, type, status FROM done
