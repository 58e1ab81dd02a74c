-- Puts events back in the queue, due now, with a fresh attempt budget: the
-- failed ones ($1 IS NULL) or the one with id $1 (any status). Returns their ids.
UPDATE stripe_sync.events
   SET status = 'pending', attempts = 0, next_attempt_at = now(), processed_at = NULL
 WHERE CASE WHEN $1::text IS NULL THEN status = 'failed' ELSE id = $1::text END
RETURNING id
