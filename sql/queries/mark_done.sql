-- Events $1 were applied: processed when their object type is mirrored ($2), else
-- skipped; this attempt is counted. In the same statement (so in the batch's
-- transaction) each gets a run per matching handler, and an alert when its
-- type is in $3 (stripe_sync.alert_events; empty while Slack is not set up).
-- A replayed event gets neither twice. Each event's account is recorded in
-- stripe_sync.accounts with its newest event time; a row already within a
-- minute of it is left alone, so that appliers draining together do not
-- queue behind one another on the platform's row. Returns what NOTIFY reports.
WITH done AS (
    UPDATE stripe_sync.events
       SET status = CASE WHEN object_type = ANY($2) THEN 'processed' ELSE 'skipped' END,
           attempts = attempts + 1,
           processed_at = now(),
           last_error = NULL
     WHERE id = ANY($1)
    RETURNING id, type, status, coalesce(account, '') AS account, created
), seen AS (
    INSERT INTO stripe_sync.accounts AS a (id, last_event_at)
    SELECT d.account, max(d.created) FROM done d
     GROUP BY d.account
    HAVING NOT EXISTS (SELECT 1 FROM stripe_sync.accounts x
                        WHERE x.id = d.account AND x.last_event_at >= max(d.created) - interval '1 minute')
     ORDER BY d.account  -- appliers lock accounts in one order: no deadlock between them
    ON CONFLICT (id) DO UPDATE SET last_event_at = greatest(a.last_event_at, excluded.last_event_at)
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
