-- Claims up to $1 due pending events, oldest first, by locking them: a
-- concurrent drainer skips them, a crash releases them. The rows are only
-- locked, not updated, until the batch is marked at its end, so a redelivery
-- of one of them (ingest's ON CONFLICT DO NOTHING) never waits for the apply.
-- The third column is the number of this attempt.
SELECT id, object_type, attempts + 1
  FROM stripe_sync.events
 WHERE status = 'pending' AND next_attempt_at <= now()
 ORDER BY created, id
 LIMIT $1
   FOR UPDATE SKIP LOCKED
