-- Event $1 failed with error $2 on this attempt: left with status $4
-- ('pending': due again after $3 milliseconds; 'failed': for good, as
-- src/outbox.rs decided); then, when it failed for good and $5 (dead_letter
-- is in stripe_sync.alert_events), a Slack alert is queued.
WITH failed AS (
    UPDATE stripe_sync.events
       SET attempts = attempts + 1,
           status = $4,
           last_error = $2,
           next_attempt_at = now() + $3::double precision * interval '1 millisecond',
           processed_at = CASE WHEN $4 = 'failed' THEN now() END
     WHERE id = $1
    RETURNING id, type, status
)
INSERT INTO stripe_sync.alerts (event_id, event_type, kind)
SELECT id, type, 'dead_letter' FROM failed WHERE status = 'failed' AND $5
ON CONFLICT (event_id, kind) DO NOTHING
