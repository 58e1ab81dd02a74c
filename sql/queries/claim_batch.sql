-- Claims up to $1 due pending events, oldest first, by locking them: a
-- concurrent drainer skips them, a crash releases them. The rows are only
-- locked, not updated, until the batch is marked at its end, so a redelivery
-- of one of them (ingest's ON CONFLICT DO NOTHING) never waits for the apply.
-- The third column is the number of this attempt.
-- With $2 > 1 appliers draining together (stripe_sync.apply_workers), only
-- the share $3 of 0..$2-1 is claimed: the events of one object always fall in
-- the same share, so two appliers never wait on each other's rows.
SELECT id, object_type, attempts + 1
  FROM stripe_sync.events
 WHERE status = 'pending' AND next_attempt_at <= now()
   AND ($2 <= 1 OR (hashtext(coalesce(object_id, id))::bigint + 2147483648) % $2 = $3)
 ORDER BY created, id
 LIMIT $1
   FOR UPDATE SKIP LOCKED
