-- Claims up to $1 due pending events, oldest first, by locking them: a
-- concurrent drainer skips them, a crash releases them. The rows are only
-- locked, not updated, until the batch is marked at its end, so a redelivery
-- of one of them (ingest's ON CONFLICT DO NOTHING) never waits for the apply.
-- The third column is the number of this attempt; the fourth, whether the
-- event is thin (it points at its object, read from the API).
-- Only events whose share key is in [$2, $3] are claimed: the whole int4
-- range for an applier alone, its share of it while several drain together
-- (stripe_sync.apply_workers; crates/core/src/shares.rs). The key is the last
-- column of events_pending_idx, written exactly as there, so the range is
-- checked on the index entries: the other shares' rows are never read.
SELECT id, object_type, attempts + 1, thin
  FROM stripe_sync.events
 WHERE status = 'pending' AND next_attempt_at <= now()
   AND hashtext(coalesce(object_id, id)) BETWEEN $2 AND $3
 ORDER BY created, id
 LIMIT $1
   FOR UPDATE SKIP LOCKED
