-- Claims up to $1 due pending events, oldest first. The row locks last until the
-- batch's transaction ends, so a concurrent drainer skips them and a crash
-- simply releases them. attempts counts this try.
WITH due AS (
    SELECT id
      FROM stripe_sync.events
     WHERE status = 'pending' AND next_attempt_at <= now()
     ORDER BY created, id
     LIMIT $1
       FOR UPDATE SKIP LOCKED
)
UPDATE stripe_sync.events e
   SET attempts = e.attempts + 1
  FROM due
 WHERE e.id = due.id
RETURNING e.id, e.object_type, e.attempts
