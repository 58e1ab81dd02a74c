-- Event $1 failed with error $2 on this attempt: retried after $3 milliseconds,
-- or failed for good once it has used $4 attempts; then, when $5
-- (dead_letter is in stripe_sync.alert_events), a Slack alert is queued.
WITH failed AS (
    UPDATE stripe_sync.events
       SET attempts = attempts + 1,
           status = CASE WHEN attempts + 1 >= $4 THEN 'failed' ELSE 'pending' END,
           last_error = $2,
           next_attempt_at = now() + $3::double precision * interval '1 millisecond',
           processed_at = CASE WHEN attempts + 1 >= $4 THEN now() END
     WHERE id = $1
    RETURNING id, type, status
)
INSERT INTO stripe_sync.alerts (event_id, event_type, kind)
SELECT id, type, 'dead_letter' FROM failed WHERE status = 'failed' AND $5
ON CONFLICT (event_id, kind) DO NOTHING
